//! `evospike topic raster`: a spike raster in the terminal — neurons on the
//! vertical axis (binned to fit the height), time steps scrolling from right to
//! left, one character per bin and step whose ink grows with the fraction of the
//! bin's neurons that fired (` `, `·`, `▪`, `█`).
//!
//! On a terminal it redraws in place (plain ANSI: cursor home, clear to end);
//! otherwise (a pipe, a file, a test) it prints whole frames of a fixed 80×24 (or
//! `--width`×`--height`) each time a screenful of new steps has arrived, and
//! once more at the end.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{decode, next_sample, topic_key_expr, Decoded, Next};
use crate::connect::{seconds, Connection};
use crate::out::Out;

#[derive(Debug, clap::Args)]
pub(crate) struct RasterArgs {
    /// Topic name.
    topic: String,
    /// Stop after N steps and print the final frame.
    #[arg(long, value_name = "N")]
    steps: Option<u64>,
    /// Stop after one screenful of steps.
    #[arg(long, conflicts_with = "steps")]
    once: bool,
    /// Width in characters (default: the terminal's, or 80).
    #[arg(long, value_name = "COLUMNS")]
    width: Option<u16>,
    /// Height in lines (default: the terminal's, or 24).
    #[arg(long, value_name = "LINES")]
    height: Option<u16>,
    /// Draw with ASCII characters only (` .o#`).
    #[arg(long)]
    ascii: bool,
    /// Fail when no message arrives for SECONDS.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    #[command(flatten)]
    connection: Connection,
}

/// Characters by increasing fraction of a bin's neurons firing: none, up to a
/// third, up to two thirds, more.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Glyphs([char; 4]);

impl Glyphs {
    pub(crate) const UNICODE: Glyphs = Glyphs([' ', '·', '▪', '█']);
    pub(crate) const ASCII: Glyphs = Glyphs([' ', '.', 'o', '#']);

    fn for_fraction(self, fired: usize, of: usize) -> char {
        let level = match fired {
            0 => 0,
            f if 3 * f <= of => 1,
            f if 3 * f <= 2 * of => 2,
            _ => 3,
        };
        self.0[level]
    }
}

/// One time step: the active neurons.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    step: u64,
    active: Vec<u32>,
}

/// The recent steps of one topic, drawn on demand for any size.
#[derive(Debug, Clone)]
pub(crate) struct Raster {
    title: String,
    columns: VecDeque<Column>,
    history: usize,
    neurons: usize,
}

/// Terminal area in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size {
    pub(crate) width: usize,
    pub(crate) height: usize,
}

/// How a raster of `neurons` fits in `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    label_width: usize,
    columns: usize,
    rows: usize,
    per_row: usize,
}

impl Layout {
    fn new(neurons: usize, size: Size) -> Layout {
        let neurons = neurons.max(1);
        let label_width = (neurons - 1).to_string().len();
        let columns = size.width.saturating_sub(label_width + 2).max(1);
        let available_rows = size.height.saturating_sub(3).max(1);
        let per_row = neurons.div_ceil(available_rows);
        Layout {
            label_width,
            columns,
            rows: neurons.div_ceil(per_row),
            per_row,
        }
    }
}

impl Raster {
    /// A raster titled `title` keeping at most `history` steps.
    pub(crate) fn new(title: impl Into<String>, history: usize) -> Raster {
        Raster {
            title: title.into(),
            columns: VecDeque::new(),
            history: history.max(1),
            neurons: 0,
        }
    }

    /// Adds the active neurons of one step of a tensor of `neurons` elements. A step
    /// seen before adds to its column; a step older than the kept history is dropped.
    pub(crate) fn push(&mut self, step: u64, neurons: usize, active: Vec<u32>) {
        self.neurons = neurons;
        let position = self.columns.partition_point(|c| c.step < step);
        match self.columns.get_mut(position) {
            Some(column) if column.step == step => {
                column.active.extend(active);
                column.active.sort_unstable();
                column.active.dedup();
                return;
            }
            _ => {}
        }
        if position == 0 && self.columns.len() == self.history {
            return;
        }
        self.columns.insert(position, Column { step, active });
        while self.columns.len() > self.history {
            self.columns.pop_front();
        }
    }

    /// The frame for `size`: a title line, one line per neuron bin, the time axis
    /// and its step labels.
    pub(crate) fn render(&self, size: Size, glyphs: Glyphs, note: &str) -> Vec<String> {
        let layout = Layout::new(self.neurons, size);
        let Some(last) = self.columns.back() else {
            return vec![clip(
                &format!("{}  waiting for spikes…", self.title),
                size.width,
            )];
        };
        let first_step = last
            .step
            .saturating_sub(layout.columns as u64 - 1)
            .max(self.columns.front().map_or(0, |c| c.step));
        let span = (last.step - first_step + 1) as usize;
        let mut counts = vec![vec![0usize; span]; layout.rows];
        for column in self.columns.iter().filter(|c| c.step >= first_step) {
            let x = (column.step - first_step) as usize;
            for &neuron in column
                .active
                .iter()
                .filter(|&&n| (n as usize) < self.neurons)
            {
                counts[neuron as usize / layout.per_row][x] += 1;
            }
        }
        let title = format!(
            "{}  {} neurons ({}/row)  steps {}–{}  last step: {} active{note}",
            self.title,
            self.neurons,
            layout.per_row,
            first_step,
            last.step,
            last.active.len()
        );
        let mut lines = vec![clip(&title, size.width)];
        let width = layout.label_width;
        for (row, row_counts) in counts.iter().enumerate() {
            let first_neuron = row * layout.per_row;
            let bin = layout.per_row.min(self.neurons - first_neuron);
            let cells: String = row_counts
                .iter()
                .map(|&fired| glyphs.for_fraction(fired, bin))
                .collect();
            lines.push(format!("{first_neuron:>width$} │{cells}"));
        }
        lines.push(format!("{:>width$} └{}", "", "─".repeat(span)));
        let (from, to) = (first_step.to_string(), last.step.to_string());
        let gap = span.saturating_sub(from.len() + to.len()).max(1);
        let labels = if span > 1 {
            format!("{from}{}{to}", " ".repeat(gap))
        } else {
            to
        };
        lines.push(format!("{:>width$}  {labels}", ""));
        lines
    }
}

fn clip(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

fn size_of(args: &RasterArgs, terminal: bool) -> Size {
    let detected = terminal.then(terminal_size::terminal_size).flatten();
    let (w, h) = detected.map_or((80, 24), |(w, h)| (w.0, h.0));
    Size {
        width: usize::from(args.width.unwrap_or(w)),
        height: usize::from(args.height.unwrap_or(h)),
    }
}

/// Fastest redraw on a terminal.
const FRAME: Duration = Duration::from_millis(50);

pub(crate) async fn raster(args: RasterArgs) -> anyhow::Result<ExitCode> {
    let timeout = args.timeout.map(|t| seconds(t, "--timeout")).transpose()?;
    let terminal = std::io::stdout().is_terminal();
    let glyphs = if args.ascii {
        Glyphs::ASCII
    } else {
        Glyphs::UNICODE
    };
    let bus = args.connection.open().await?;
    let key = topic_key_expr(bus.keys(), &args.topic)?;
    let subscription = bus
        .subscribe_raw(&key)
        .with_context(|| format!("cannot subscribe to {key}"))?;

    let mut out = Out::new();
    let mut screen = Screen {
        terminal,
        drawn: None,
    };
    let mut raster = Raster::new(args.topic.clone(), 1024);
    let (mut received, mut invalid, mut unprinted) = (0u64, 0u64, 0usize);
    let limit = if args.once {
        Some(Layout::new(1, size_of(&args, terminal)).columns as u64)
    } else {
        args.steps
    };
    if terminal {
        out.raw("\x1b[?25l\x1b[2J")?;
    }
    let result = loop {
        if limit.is_some_and(|limit| received >= limit) {
            break Ok(());
        }
        let sample = match next_sample(&subscription, timeout).await? {
            Next::Sample(sample) => sample,
            Next::Interrupted => break Ok(()),
            Next::TimedOut => break Err(anyhow::anyhow!(
                "no spikes on {} within {:.1}s — is anything publishing it? (`evospike topic list`)",
                args.topic,
                timeout.unwrap_or_default().as_secs_f64()
            )),
        };
        match decode(&sample, usize::MAX) {
            Ok(Decoded::Spikes(spikes)) => raster.push(spikes.step, spikes.len, spikes.indices),
            Ok(_) => break Err(anyhow::anyhow!("{key} carries something other than spike tensors; `evospike topic raster` draws spikes only")),
            Err(err) => {
                invalid += 1;
                if !terminal {
                    eprintln!("error: {err:#}");
                }
                continue;
            }
        }
        received += 1;
        unprinted += 1;
        let size = size_of(&args, terminal);
        let note = if invalid > 0 {
            format!("  ({invalid} bad payloads)")
        } else {
            String::new()
        };
        if terminal && screen.drawn.is_none_or(|at| at.elapsed() >= FRAME) {
            screen.draw(&mut out, &raster.render(size, glyphs, &note))?;
        } else if !terminal && unprinted >= Layout::new(raster.neurons, size).columns {
            screen.draw(&mut out, &raster.render(size, glyphs, &note))?;
            unprinted = 0;
        }
    };
    let size = size_of(&args, terminal);
    let note = if invalid > 0 {
        format!("  ({invalid} bad payloads)")
    } else {
        String::new()
    };
    if terminal {
        screen.draw(&mut out, &raster.render(size, glyphs, &note))?;
        out.raw("\x1b[?25h\n")?;
    } else if unprinted > 0 {
        screen.draw(&mut out, &raster.render(size, glyphs, &note))?;
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// Where frames go: redrawn in place on a terminal, printed one after another otherwise.
#[derive(Debug)]
struct Screen {
    terminal: bool,
    drawn: Option<Instant>,
}

impl Screen {
    fn draw(&mut self, out: &mut Out, lines: &[String]) -> std::io::Result<()> {
        if self.terminal {
            out.raw(&format!("\x1b[H{}\x1b[K\x1b[J", lines.join("\x1b[K\n")))?;
        } else {
            out.raw(&(lines.join("\n") + "\n"))?;
        }
        self.drawn = Some(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: Size = Size {
        width: 80,
        height: 24,
    };

    #[test]
    fn small_layers_get_one_row_per_neuron() {
        let mut raster = Raster::new("t", 100);
        raster.push(0, 4, vec![0, 3]);
        raster.push(1, 4, vec![1]);
        let lines = raster.render(SIZE, Glyphs::ASCII, "");
        assert_eq!(lines.len(), 1 + 4 + 2);
        assert!(
            lines[0].starts_with("t  4 neurons (1/row)  steps 0–1  last step: 1 active"),
            "{}",
            lines[0]
        );
        assert_eq!(lines[1], "0 │# ");
        assert_eq!(lines[2], "1 │ #");
        assert_eq!(lines[3], "2 │  ");
        assert_eq!(lines[4], "3 │# ");
        assert_eq!(lines[5], "  └──");
        assert_eq!(lines[6], "   0 1");
    }

    #[test]
    fn big_layers_are_binned_to_the_height_with_ink_by_fraction() {
        let mut raster = Raster::new("big", 100);
        // 100 neurons in 21 available rows: 5 per row, 20 rows.
        raster.push(10, 100, vec![0, 5, 6, 10, 11, 12, 13]);
        let lines = raster.render(SIZE, Glyphs::ASCII, "");
        assert_eq!(lines.len(), 1 + 20 + 2);
        assert!(lines.iter().all(|l| l.chars().count() <= 80));
        assert_eq!(lines[1], " 0 │.", "1 of 5 fired");
        assert_eq!(lines[2], " 5 │o", "2 of 5 fired");
        assert_eq!(lines[3], "10 │#", "4 of 5 fired");
        assert_eq!(lines[4], "15 │ ");
    }

    #[test]
    fn time_scrolls_and_gaps_stay_blank() {
        let mut raster = Raster::new("t", 1000);
        for step in 0..200u64 {
            if step != 195 {
                raster.push(step, 1, vec![0]);
            }
        }
        let lines = raster.render(
            Size {
                width: 20,
                height: 5,
            },
            Glyphs::ASCII,
            "",
        );
        // 20 wide, label width 1: 17 columns, steps 183..199.
        assert_eq!(lines[1], format!("0 │{}", "############ ####"));
        assert_eq!(lines[3], format!("   183{}199", " ".repeat(11)));
    }

    #[test]
    fn late_and_repeated_steps_merge_into_their_column() {
        let mut raster = Raster::new("t", 3);
        raster.push(5, 2, vec![0]);
        raster.push(7, 2, vec![0]);
        raster.push(6, 2, vec![1]);
        raster.push(7, 2, vec![1]);
        raster.push(1, 2, vec![1]); // older than the history: dropped
        let steps: Vec<u64> = raster.columns.iter().map(|c| c.step).collect();
        assert_eq!(steps, vec![5, 6, 7]);
        assert_eq!(raster.columns[2].active, vec![0, 1]);
    }

    #[test]
    fn tiny_and_odd_sizes_do_not_panic() {
        let mut raster = Raster::new("t", 10);
        raster.push(u64::MAX - 1, 1_000_000, vec![0, 999_999, 2_000_000]);
        raster.push(0, 1_000_000, vec![5]);
        for (width, height) in [(0, 0), (1, 1), (3, 2), (500, 3)] {
            let lines = raster.render(Size { width, height }, Glyphs::UNICODE, "");
            assert!(!lines.is_empty());
        }
    }

    #[test]
    fn an_empty_raster_says_it_waits() {
        let lines = Raster::new("layer1/spikes", 10).render(SIZE, Glyphs::UNICODE, "");
        assert_eq!(
            lines,
            vec!["layer1/spikes  waiting for spikes…".to_string()]
        );
    }
}
