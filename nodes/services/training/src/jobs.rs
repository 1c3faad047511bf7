//! The jobs, kept in the shared [`evospike_store`] (one redb file under the
//! data directory; every change is one durable, atomic batch).
//!
//! Two tables: `jobs` (job ID → the [`TrainJob`] message, protobuf-encoded) and
//! `submissions` (a caller's `submission_id` → the job it created). Job IDs start
//! with the creation time in milliseconds, zero-padded, so key order is
//! submission order and the oldest pending job is the first one found.

use std::path::Path;

use evospike_schemas::proto::{JobState, TrainJob};
use evospike_store::{RedbStore, Store, StoreError, Table, Write};
use prost::Message as _;

/// Job ID → `TrainJob`.
const JOBS: Table = Table("jobs");
/// `submission_id` → job ID.
const SUBMISSIONS: Table = Table("submissions");

/// A job record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record does not decode (the file was written by something else).
    #[error("job {job_id}: the stored record is corrupt")]
    Corrupt {
        /// The job.
        job_id: String,
        /// Why it does not decode.
        #[source]
        source: prost::DecodeError,
    },
}

/// Whether `state` is final: a job in it never changes again.
pub fn is_final(state: JobState) -> bool {
    matches!(
        state,
        JobState::Succeeded | JobState::Failed | JobState::Cancelled
    )
}

/// The jobs' durable records.
pub struct Jobs {
    store: Box<dyn Store>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

impl Jobs {
    /// Opens (creating when missing) `state.redb` in `data_dir`.
    ///
    /// # Errors
    /// The store cannot be opened (missing permissions, another process has it).
    pub fn open(data_dir: &Path) -> Result<Jobs, JobsError> {
        let store = RedbStore::open(&data_dir.join("state.redb"), &[JOBS, SUBMISSIONS])?;
        Ok(Jobs::new(Box::new(store)))
    }

    /// Jobs over `store`.
    pub fn new(store: Box<dyn Store>) -> Jobs {
        Jobs { store }
    }

    /// The job `job_id`, if any.
    ///
    /// # Errors
    /// The store cannot be read or holds a corrupt record.
    pub fn get(&self, job_id: &str) -> Result<Option<TrainJob>, JobsError> {
        self.store
            .get(JOBS, job_id)?
            .map(|bytes| decode(job_id, &bytes))
            .transpose()
    }

    /// Every job, oldest first.
    ///
    /// # Errors
    /// The store cannot be read or holds a corrupt record.
    pub fn all(&self) -> Result<Vec<TrainJob>, JobsError> {
        self.store
            .scan(JOBS, "")?
            .into_iter()
            .map(|(id, bytes)| decode(&id, &bytes))
            .collect()
    }

    /// The job a `submission_id` created, if any.
    ///
    /// # Errors
    /// The store cannot be read or holds a corrupt record.
    pub fn by_submission(&self, submission_id: &str) -> Result<Option<TrainJob>, JobsError> {
        match self.store.get(SUBMISSIONS, submission_id)? {
            Some(id) => self.get(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Writes `job` (a new job, or a change of one), recording its
    /// `submission_id` with it.
    ///
    /// # Errors
    /// The store cannot be written; nothing changed.
    pub fn put(&self, job: &TrainJob) -> Result<(), JobsError> {
        let mut batch = vec![Write::Put(JOBS, job.job_id.clone(), job.encode_to_vec())];
        if let Some(sid) = job.request.as_ref().and_then(|r| r.submission_id.clone()) {
            batch.push(Write::Put(
                SUBMISSIONS,
                sid,
                job.job_id.clone().into_bytes(),
            ));
        }
        self.store.write(batch)?;
        Ok(())
    }
}

fn decode(job_id: &str, bytes: &[u8]) -> Result<TrainJob, JobsError> {
    TrainJob::decode(bytes).map_err(|source| JobsError::Corrupt {
        job_id: job_id.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use evospike_schemas::proto::TrainRequest;

    fn job(id: &str, sid: Option<&str>) -> TrainJob {
        TrainJob {
            job_id: id.into(),
            state: JobState::Pending as i32,
            request: Some(TrainRequest {
                submission_id: sid.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn jobs_and_submissions_survive_reopening_in_submission_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let jobs = Jobs::open(dir.path()).unwrap();
            jobs.put(&job("0000000000002-b", Some("mine"))).unwrap();
            jobs.put(&job("0000000000001-a", None)).unwrap();
            let mut running = job("0000000000001-a", None);
            running.state = JobState::Running as i32;
            jobs.put(&running).unwrap();
        }
        let jobs = Jobs::open(dir.path()).unwrap();
        let all = jobs.all().unwrap();
        let ids: Vec<_> = all.iter().map(|j| j.job_id.as_str()).collect();
        assert_eq!(ids, ["0000000000001-a", "0000000000002-b"]);
        assert_eq!(all[0].state(), JobState::Running);
        assert_eq!(
            jobs.by_submission("mine").unwrap().unwrap().job_id,
            "0000000000002-b"
        );
        assert!(jobs.by_submission("other").unwrap().is_none());
        assert!(jobs.get("nope").unwrap().is_none());
    }
}
