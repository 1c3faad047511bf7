//! What a request's `inputs` become: a [`Sample`] the network can run.
//!
//! An `InferInputs` sets exactly one of three fields:
//!
//! - `image` (base64): a PNG — any colour type and bit depth, turned to grayscale
//!   (Rec. 601 luma; alpha ignored) and, when its size differs from the model's
//!   input shape, resampled by area averaging — or raw 8-bit pixels, one byte per
//!   input, `0` black and `255` white. A pixel `p` becomes the value `p / 255`.
//! - `pixels`: one value per input, each in `[0, 1]`.
//! - `spikes`: a spike train that drives the first layer directly (the encoder is
//!   bypassed): input neuron `n` firing at step `t` adds its weight row to the
//!   first layer's input at step `t`. Its `steps` is the number of steps simulated.
//!
//! Everything is checked against the model; each refusal names the field and
//! what the model expects, and becomes a 400.

use evospike_plugin_api::NetworkSpec;
use evospike_schemas::proto::{InferInputs, SpikeTrain};

/// Longest spike train or `config.steps` a request may ask for.
pub const MAX_STEPS: u32 = 10_000;
/// Largest PNG accepted, in pixels (width × height).
pub const MAX_IMAGE_PIXELS: u64 = 16 << 20;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// One sample, ready for the network.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// One value per input in `[0, 1]`, presented every step.
    Values(Vec<f32>),
    /// Input spikes by step: `by_step[t]` lists the input neurons firing at `t`.
    Spikes(Vec<Vec<u32>>),
}

impl Sample {
    /// Steps this sample asks for, if it fixes them (a spike train does).
    pub fn steps(&self) -> Option<u32> {
        match self {
            Sample::Values(_) => None,
            Sample::Spikes(by_step) => Some(by_step.len() as u32),
        }
    }
}

/// Reads `inputs` (`at` names it in errors, e.g. `inputs` or `inputs[3]`) for a
/// model with network `net`.
///
/// # Errors
/// A message for the client naming what is wrong.
pub fn sample(inputs: &InferInputs, net: &NetworkSpec, at: &str) -> Result<Sample, String> {
    let set = [
        inputs.image.is_some(),
        !inputs.pixels.is_empty(),
        inputs.spikes.is_some(),
    ];
    match set.iter().filter(|&&s| s).count() {
        1 => {}
        0 => {
            return Err(format!(
                "`{at}` gives no input: set one of `image` (base64 PNG or raw 8-bit pixels), `pixels` ({} values in [0, 1]) or `spikes`",
                net.input_size
            ))
        }
        _ => {
            return Err(format!(
                "`{at}` sets more than one of `image`, `pixels` and `spikes`; set exactly one"
            ))
        }
    }
    if let Some(image) = &inputs.image {
        return image_values(image, net)
            .map(Sample::Values)
            .map_err(|e| format!("`{at}.image`: {e}"));
    }
    if let Some(train) = &inputs.spikes {
        return spike_steps(train, net.input_size)
            .map(Sample::Spikes)
            .map_err(|e| format!("`{at}.spikes`: {e}"));
    }
    pixel_values(&inputs.pixels, net.input_size)
        .map(Sample::Values)
        .map_err(|e| format!("`{at}.pixels`: {e}"))
}

fn shape_text(net: &NetworkSpec) -> String {
    match net.input_shape[..] {
        [h, w] => format!("{} inputs (a {w}x{h} image)", net.input_size),
        _ => format!("{} inputs", net.input_size),
    }
}

fn pixel_values(pixels: &[f32], inputs: usize) -> Result<Vec<f32>, String> {
    if pixels.len() != inputs {
        return Err(format!(
            "has {} values; the model takes {inputs}",
            pixels.len()
        ));
    }
    if let Some((i, v)) = pixels
        .iter()
        .enumerate()
        .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        return Err(format!("value {i} is {v}; values must be in [0, 1]"));
    }
    Ok(pixels.to_vec())
}

fn spike_steps(train: &SpikeTrain, inputs: usize) -> Result<Vec<Vec<u32>>, String> {
    if train.steps == 0 || train.steps > MAX_STEPS {
        return Err(format!(
            "`steps` is {}; it must be between 1 and {MAX_STEPS}",
            train.steps
        ));
    }
    if train.times.len() != train.neurons.len() {
        return Err(format!(
            "`times` has {} events and `neurons` {}; they must pair up",
            train.times.len(),
            train.neurons.len()
        ));
    }
    let mut by_step = vec![Vec::new(); train.steps as usize];
    for (i, (&t, &n)) in train.times.iter().zip(&train.neurons).enumerate() {
        if t >= train.steps {
            return Err(format!(
                "event {i} is at step {t}, past the train's {} steps",
                train.steps
            ));
        }
        if n as usize >= inputs {
            return Err(format!(
                "event {i} names input neuron {n}; the model has {inputs} inputs"
            ));
        }
        by_step[t as usize].push(n);
    }
    for step in &mut by_step {
        // The order a layer node's spike words give: ascending, each neuron once.
        step.sort_unstable();
        step.dedup();
    }
    Ok(by_step)
}

fn image_values(bytes: &[u8], net: &NetworkSpec) -> Result<Vec<f32>, String> {
    if bytes.starts_with(&PNG_SIGNATURE) {
        let (w, h, gray) = decode_png(bytes)?;
        let (out_h, out_w) = match net.input_shape[..] {
            [oh, ow] => (oh, ow),
            _ if w * h == net.input_size => (h, w),
            _ => {
                return Err(format!(
                    "is a {w}x{h} PNG, but the model's input is not an image; it takes {}",
                    shape_text(net)
                ))
            }
        };
        let pixels = if (w, h) == (out_w, out_h) {
            gray.iter().map(|&p| f64::from(p)).collect()
        } else {
            resample(&gray, w, h, out_w, out_h)
        };
        return Ok(pixels.iter().map(|&p| (p / 255.0) as f32).collect());
    }
    if bytes.len() != net.input_size {
        return Err(format!(
            "is neither a PNG nor raw pixels for this model: {} bytes, and the model takes {} (one byte per input)",
            bytes.len(),
            shape_text(net)
        ));
    }
    Ok(bytes
        .iter()
        .map(|&p| (f64::from(p) / 255.0) as f32)
        .collect())
}

/// A PNG as 8-bit grayscale: `(width, height, pixels)`.
fn decode_png(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
    let mut decoder =
        png::Decoder::new_with_limits(std::io::Cursor::new(bytes), png::Limits { bytes: 64 << 20 });
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("is not a readable PNG: {e}"))?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    if (w as u64) * (h as u64) > MAX_IMAGE_PIXELS {
        return Err(format!(
            "is a {w}x{h} PNG; at most {MAX_IMAGE_PIXELS} pixels are accepted"
        ));
    }
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("is not a readable PNG: {e}"))?;
    let channels = frame.color_type.samples();
    let data = &buf[..frame.buffer_size()];
    let gray = match frame.color_type {
        png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => {
            data.chunks_exact(channels).map(|px| px[0]).collect()
        }
        png::ColorType::Rgb | png::ColorType::Rgba => data
            .chunks_exact(channels)
            .map(|px| {
                let y =
                    0.299 * f64::from(px[0]) + 0.587 * f64::from(px[1]) + 0.114 * f64::from(px[2]);
                y.round().clamp(0.0, 255.0) as u8
            })
            .collect(),
        png::ColorType::Indexed => {
            return Err("is an indexed PNG the decoder did not expand".into())
        }
    };
    Ok((frame.width as usize, frame.height as usize, gray))
}

/// Area-average resampling of a `w`×`h` image to `ow`×`oh`: each output pixel is
/// the mean of the source area it covers (fractional pixels weighted).
fn resample(src: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f64> {
    // The source span [lo, hi) of output index `i` along an axis, and the
    // weight of source index `s` in it.
    let span = |i: usize, n_in: usize, n_out: usize| {
        let scale = n_in as f64 / n_out as f64;
        (i as f64 * scale, (i + 1) as f64 * scale)
    };
    let overlap = |s: usize, (lo, hi): (f64, f64)| ((s + 1) as f64).min(hi) - (s as f64).max(lo);
    let mut out = Vec::with_capacity(ow * oh);
    for oy in 0..oh {
        let ys = span(oy, h, oh);
        for ox in 0..ow {
            let xs = span(ox, w, ow);
            let (mut sum, mut area) = (0.0, 0.0);
            for sy in (ys.0.floor() as usize)..(ys.1.ceil() as usize).min(h) {
                let wy = overlap(sy, ys);
                for sx in (xs.0.floor() as usize)..(xs.1.ceil() as usize).min(w) {
                    let a = wy * overlap(sx, xs);
                    sum += a * f64::from(src[sy * w + sx]);
                    area += a;
                }
            }
            out.push(if area > 0.0 { sum / area } else { 0.0 });
        }
    }
    out
}

/// `bytes` of a `w`×`h` 8-bit grayscale image as a PNG (for tests and examples).
pub fn encode_png_gray(w: u32, h: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .expect("a PNG header writes to memory");
        writer
            .write_image_data(pixels)
            .expect("the image matches its header");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(shape: Vec<usize>) -> NetworkSpec {
        let mut text = serde_json::json!({
            "input_size": shape.iter().product::<usize>(),
            "input_shape": shape,
            "encoder": {"plugin": "CurrentEncoder"},
            "dt_ms": 1.0,
            "steps_per_sample": 5,
            "layers": [{"name": "out", "size": 2, "neuron": "LIFNeuron", "params": {}}],
            "readout": "membrane",
            "classes": ["a", "b"],
        });
        serde_json::from_value(text.take()).unwrap()
    }

    fn inputs() -> InferInputs {
        InferInputs::default()
    }

    #[test]
    fn raw_pixels_png_and_scaled_png_read_the_same() {
        let n = net(vec![2, 2]);
        let raw = vec![0u8, 51, 102, 255];
        let from_raw = sample(
            &InferInputs {
                image: Some(raw.clone()),
                ..inputs()
            },
            &n,
            "inputs",
        )
        .unwrap();
        assert_eq!(from_raw, Sample::Values(vec![0.0, 0.2, 0.4, 1.0]));
        let png = encode_png_gray(2, 2, &raw);
        let from_png = sample(
            &InferInputs {
                image: Some(png),
                ..inputs()
            },
            &n,
            "inputs",
        )
        .unwrap();
        assert_eq!(from_png, from_raw);
        // Twice the size: every output pixel averages a 2x2 block of one value.
        let big: Vec<u8> = [
            0u8, 0, 51, 51, 0, 0, 51, 51, 102, 102, 255, 255, 102, 102, 255, 255,
        ]
        .to_vec();
        let scaled = sample(
            &InferInputs {
                image: Some(encode_png_gray(4, 4, &big)),
                ..inputs()
            },
            &n,
            "inputs",
        )
        .unwrap();
        assert_eq!(scaled, from_raw);
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let n = net(vec![2, 2]);
        let err = |i: InferInputs| sample(&i, &n, "inputs").unwrap_err();
        assert!(err(inputs()).contains("gives no input"));
        assert!(err(InferInputs {
            image: Some(vec![1, 2, 3]),
            pixels: vec![0.0; 4],
            ..inputs()
        })
        .contains("more than one"));
        assert!(err(InferInputs {
            image: Some(vec![1, 2, 3]),
            ..inputs()
        })
        .contains("3 bytes, and the model takes 4 inputs (a 2x2 image)"));
        assert!(err(InferInputs {
            pixels: vec![0.0, 0.5, 1.5, 0.0],
            ..inputs()
        })
        .contains("value 2 is 1.5"));
        assert!(err(InferInputs {
            pixels: vec![0.0; 3],
            ..inputs()
        })
        .contains("has 3 values"));
        let mut png = encode_png_gray(2, 2, &[1, 2, 3, 4]);
        png.truncate(20);
        assert!(err(InferInputs {
            image: Some(png),
            ..inputs()
        })
        .contains("not a readable PNG"));
        let train = |steps, times: Vec<u32>, neurons: Vec<u32>| InferInputs {
            spikes: Some(SpikeTrain {
                steps,
                times,
                neurons,
            }),
            ..inputs()
        };
        assert!(err(train(0, vec![], vec![])).contains("between 1 and"));
        assert!(err(train(3, vec![0], vec![])).contains("pair up"));
        assert!(err(train(3, vec![3], vec![0])).contains("past the train's 3 steps"));
        assert!(err(train(3, vec![1], vec![4])).contains("input neuron 4"));
        assert_eq!(
            sample(&train(2, vec![1, 0, 1], vec![3, 2, 0]), &n, "x").unwrap(),
            Sample::Spikes(vec![vec![2], vec![0, 3]])
        );
    }
}
