//! [`Device`]: an outbox and a client together, as a field app holds them.
//!
//! [`Device::sync`] is the whole offline round trip: upload the photos pending
//! mutations need, push the mutations in batches of at most 500, settle each by its
//! result (applied or duplicate → done; rejected → kept with its code; missing media →
//! upload those photos and push again), then pull the changes after the stored cursor.

use crate::client::{ApiClient, ClientOptions, Credentials, sha256_hex};
use crate::error::{ClientError, Result};
use crate::outbox::{Outbox, Recorded};
use crate::outbox::{OutboxCounts, PendingMutation, PendingPhoto, PhotoFile};
use baithak_api_types::{
    FeedbackData, MAX_MUTATIONS_PER_PUSH, MeetingData, MutationStatus, TokenUser,
};
use bytes::Bytes;
use futures_util::StreamExt;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Rounds of upload → push within one sync (a `missing_media` answer costs one).
const MAX_ROUNDS: usize = 4;
/// Pull pages per sync; the rest waits for the next sync.
const MAX_PULL_PAGES: usize = 200;
const PULL_LIMIT: u32 = 500;

/// Hears what a sync does as it happens (progress bars, latency statistics).
pub trait SyncObserver: Send + Sync {
    fn photo_uploaded(&self, _sha256: &str, _bytes: u64, _elapsed: Duration) {}
    /// A mutation reached a final state; `latency` runs from the start of the first
    /// upload of its photos in this sync (or from its push) to now.
    fn mutation_settled(&self, _id: Uuid, _kind: &str, _done: bool, _latency: Duration) {}
}

/// A [`SyncObserver`] that ignores everything.
pub struct NoObserver;
impl SyncObserver for NoObserver {}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    pub photos_uploaded: u64,
    pub photo_bytes: u64,
    /// Refused for good (bad image, file gone): their mutations are rejected too.
    pub photos_failed: u64,
    pub pushes: u64,
    /// Mutations the server applied (or had applied) in this sync.
    pub done: u64,
    /// Mutations refused for good in this sync.
    pub rejected: u64,
    /// `missing_media` answers (each costs an upload and another push).
    pub missing_media: u64,
    pub pulled: u64,
    /// Mutations still pending after this sync.
    pub pending: u64,
    /// Transient failures that left work for the next sync.
    pub errors: Vec<String>,
}

impl SyncReport {
    /// Nothing is left to send.
    pub fn is_complete(&self) -> bool {
        self.pending == 0 && self.errors.is_empty()
    }
}

/// The result of pushing every settled mutation again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayReport {
    pub checked: u64,
    /// Answered `duplicate`: the server holds that very mutation.
    pub duplicate: u64,
    /// Anything else, with what the server said.
    pub unexpected: Vec<(Uuid, String)>,
}

/// One meeting's photo uploads: its id, when they started, and each outcome.
type Uploaded = (Uuid, Instant, Vec<(PendingPhoto, Result<PhotoOutcome>)>);

enum PhotoOutcome {
    Uploaded { bytes: u64 },
    Failed,
}

/// A field device: its outbox file and a client that keeps its session there.
#[derive(Clone, Debug)]
pub struct Device {
    client: ApiClient,
    outbox: Outbox,
    upload_concurrency: usize,
    /// Meetings whose photos upload while an earlier one is pushed, in
    /// [`Device::sync_each_with`]; 0: strictly one meeting at a time.
    meetings_ahead: usize,
}

/// Counts one photo upload's outcome; a transient failure is noted and leaves the
/// photo for the next sync, anything else that failed ends the sync.
fn note_upload(
    observer: &dyn SyncObserver,
    report: &mut SyncReport,
    p: &PendingPhoto,
    started: Instant,
    r: Result<PhotoOutcome>,
) -> Result<()> {
    match r {
        Ok(PhotoOutcome::Uploaded { bytes }) => {
            report.photos_uploaded += 1;
            report.photo_bytes += bytes;
            observer.photo_uploaded(&p.sha256, bytes, started.elapsed());
        }
        Ok(PhotoOutcome::Failed) => report.photos_failed += 1,
        Err(e) if e.is_transient() => {
            report.errors.push(format!("photo {}: {e}", p.sha256));
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// `{"device_id": …, "mutations": [<stored JSON>, …]}`, built from the bytes stored at
/// record time so that every push of a mutation carries the same content.
fn push_body(device_id: &str, batch: &[PendingMutation]) -> Result<Bytes> {
    let id = serde_json::to_string(device_id)
        .map_err(|e| ClientError::Invalid(format!("device id: {e}")))?;
    let mut body = String::with_capacity(
        32 + id.len() + batch.iter().map(|m| m.body.len() + 1).sum::<usize>(),
    );
    body.push_str("{\"device_id\":");
    body.push_str(&id);
    body.push_str(",\"mutations\":[");
    for (i, m) in batch.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&m.body);
    }
    body.push_str("]}");
    Ok(Bytes::from(body))
}

/// Photo errors that no retry can fix.
fn permanent_photo_error(e: &ClientError) -> bool {
    !e.is_transient() && matches!(e.status(), Some(400 | 403 | 413 | 415 | 422))
}

impl Device {
    /// Opens (creating when absent) the outbox at `path` and a client for `opts`
    /// that keeps its session in it.
    pub async fn open(path: impl AsRef<Path>, opts: ClientOptions) -> Result<Device> {
        let path = path.as_ref().to_path_buf();
        let (outbox, client) = tokio::task::spawn_blocking(move || -> Result<_> {
            let outbox = Outbox::open(&path)?;
            let device_id = outbox.device_id()?;
            let client = ApiClient::with_token_store(opts, device_id, Arc::new(outbox.clone()))?;
            Ok((outbox, client))
        })
        .await
        .map_err(ClientError::join)??;
        Ok(Device {
            client,
            outbox,
            upload_concurrency: 2,
            meetings_ahead: 2,
        })
    }

    pub fn client(&self) -> &ApiClient {
        &self.client
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Photos sent at once during a sync (default 2).
    pub fn set_upload_concurrency(&mut self, n: usize) {
        self.upload_concurrency = n.max(1);
    }

    /// How many meetings' photos [`Device::sync_each_with`] uploads ahead of the
    /// meeting being pushed (default 2; 0 for strictly one meeting at a time). Ahead
    /// hides round trips on a slow link; against a saturated server it only makes
    /// each request wait longer.
    pub fn set_meetings_ahead(&mut self, n: usize) {
        self.meetings_ahead = n;
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Outbox) -> Result<T> + Send + 'static,
    {
        let outbox = self.outbox.clone();
        tokio::task::spawn_blocking(move || f(&outbox))
            .await
            .map_err(ClientError::join)?
    }

    /// Logs in; with `remember`, keeps the credentials (in memory) to log in again by
    /// itself when the session ends.
    pub async fn login(
        &self,
        login: &str,
        password: &SecretString,
        remember: bool,
    ) -> Result<TokenUser> {
        let user = self.client.login(login, password).await?;
        if remember {
            self.client.remember_credentials(Some(Credentials {
                login: login.to_owned(),
                password: password.clone(),
            }));
        }
        Ok(user)
    }

    /// Queues a meeting with photo files, hashed now. Keep each file until the meeting
    /// is settled: one gone before then is sent for only if the server lacks the
    /// photo, and if it does, the meeting is rejected (`photo_file_missing`).
    pub async fn record_meeting(&self, data: MeetingData, photos: &[PathBuf]) -> Result<Recorded> {
        let photos = photos.to_vec();
        self.blocking(move |o| {
            let files = photos
                .into_iter()
                .map(PhotoFile::from_path)
                .collect::<std::io::Result<Vec<_>>>()?;
            o.record_meeting(data, &files)
        })
        .await
    }

    /// Queues a feedback record.
    pub async fn record_feedback(&self, data: FeedbackData) -> Result<Recorded> {
        self.blocking(move |o| o.record_feedback(data)).await
    }

    pub async fn counts(&self) -> Result<OutboxCounts> {
        self.blocking(|o| o.counts()).await
    }

    pub async fn sync(&self) -> Result<SyncReport> {
        self.sync_with(&NoObserver).await
    }

    /// See the module documentation. Transient photo failures are reported in
    /// [`SyncReport::errors`] and leave their mutations pending; a failed push or pull
    /// is an error (everything settled before it stays settled).
    pub async fn sync_with(&self, observer: &dyn SyncObserver) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let mut photo_started: HashMap<String, Instant> = HashMap::new();
        for _round in 0..MAX_ROUNDS {
            self.upload_photos(observer, &mut report, &mut photo_started)
                .await?;
            let missing = self
                .push_pending(observer, &mut report, &photo_started)
                .await?;
            if !missing {
                break;
            }
        }
        self.pull_all(&mut report).await?;
        report.pending = self.counts().await?.pending;
        Ok(report)
    }

    /// Like [`Device::sync_with`], but one meeting at a time: upload its photos, then
    /// push it alone, then the next. Each mutation is acknowledged as soon as its own
    /// photos are up, which is how a phone with a fresh signal behaves and how
    /// per-submission latency is measured. Photos of the next meetings (up to
    /// [`Device::set_meetings_ahead`], default 2) upload while a meeting is being
    /// pushed, so a backlog is not one round trip after another.
    pub async fn sync_each_with(&self, observer: &dyn SyncObserver) -> Result<SyncReport> {
        let mut to_upload: HashMap<String, PendingPhoto> = self
            .blocking(|o| o.photos_to_upload())
            .await?
            .into_iter()
            .map(|p| (p.sha256.clone(), p))
            .collect();
        let jobs: Vec<(Uuid, Vec<PendingPhoto>)> = self
            .blocking(|o| o.pending(usize::MAX))
            .await?
            .into_iter()
            .map(|m| {
                let photos = m
                    .photos
                    .iter()
                    .filter_map(|s| to_upload.remove(s))
                    .collect();
                (m.id, photos)
            })
            .collect();
        let mut report = SyncReport::default();
        let mut started: HashMap<String, Instant> = HashMap::new();
        let ahead = self.meetings_ahead;
        if ahead == 0 {
            for (id, photos) in jobs {
                let (id, t, results) = self.upload_meeting(id, photos).await;
                self.push_uploaded(id, t, results, observer, &mut report, &mut started)
                    .await?;
            }
        } else {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Uploaded>(ahead);
            let uploads = async move {
                let mut done = futures_util::stream::iter(jobs)
                    .map(|(id, photos)| self.upload_meeting(id, photos))
                    .buffered(ahead);
                while let Some(item) = done.next().await {
                    // The pushing side stopped (an error): stop uploading too.
                    if tx.send(item).await.is_err() {
                        break;
                    }
                }
            };
            let (report, started) = (&mut report, &mut started);
            let pushes = async move {
                let mut outcome = Ok::<_, ClientError>(());
                while let Some((id, t, results)) = rx.recv().await {
                    if let Err(e) = self
                        .push_uploaded(id, t, results, observer, report, started)
                        .await
                    {
                        outcome = Err(e);
                        break;
                    }
                }
                // The receiver must go now, not when this function returns: the
                // upload side may be waiting for room in the channel, and only a
                // closed channel ends that wait (without it, a failed push hung the
                // sync for good).
                drop(rx);
                outcome
            };
            let ((), pushed) = futures_util::future::join(uploads, pushes).await;
            pushed?;
        }
        // Whatever is still pushable (a photo that failed for good rejects its
        // mutations, a `missing_media` retry) goes through the batched path.
        for _round in 0..MAX_ROUNDS {
            self.upload_photos(observer, &mut report, &mut started)
                .await?;
            if !self.push_pending(observer, &mut report, &started).await? {
                break;
            }
        }
        self.pull_all(&mut report).await?;
        report.pending = self.counts().await?.pending;
        Ok(report)
    }

    /// Uploads one meeting's photos, one after another.
    async fn upload_meeting(&self, id: Uuid, photos: Vec<PendingPhoto>) -> Uploaded {
        let t = Instant::now();
        let mut results = Vec::with_capacity(photos.len());
        for p in photos {
            let r = self.upload_one(&p).await;
            results.push((p, r));
        }
        (id, t, results)
    }

    /// Counts a meeting's photo outcomes, then pushes the meeting alone if it can go.
    async fn push_uploaded(
        &self,
        id: Uuid,
        t: Instant,
        results: Vec<(PendingPhoto, Result<PhotoOutcome>)>,
        observer: &dyn SyncObserver,
        report: &mut SyncReport,
        started: &mut HashMap<String, Instant>,
    ) -> Result<()> {
        for (p, r) in results {
            started.insert(p.sha256.clone(), t);
            note_upload(observer, report, &p, t, r)?;
        }
        let ready = self
            .blocking(|o| o.pushable(MAX_MUTATIONS_PER_PUSH))
            .await?;
        if let Some(ready) = ready.into_iter().find(|r| r.id == id) {
            self.push_batch(vec![ready], observer, report, started)
                .await?;
        }
        Ok(())
    }

    async fn upload_photos(
        &self,
        observer: &dyn SyncObserver,
        report: &mut SyncReport,
        started: &mut HashMap<String, Instant>,
    ) -> Result<()> {
        let photos = self.blocking(|o| o.photos_to_upload()).await?;
        let mut results = futures_util::stream::iter(photos)
            .map(|p| async move {
                let t = Instant::now();
                let r = self.upload_one(&p).await;
                (p, t, r)
            })
            .buffer_unordered(self.upload_concurrency);
        while let Some((p, t, r)) = results.next().await {
            started.entry(p.sha256.clone()).or_insert(t);
            note_upload(observer, report, &p, t, r)?;
        }
        Ok(())
    }

    /// A pending photo whose file is gone or no longer the recorded photo. The server
    /// may hold it though this outbox does not know: "the server has this photo" is
    /// bookkeeping that a power cut can take back, and an app that deleted the file
    /// once it was up leaves nothing to resend. So the server is asked before the
    /// photo (and with it its meeting) is given up on; a network error leaves it
    /// pending for the next sync.
    async fn unreadable_photo(
        &self,
        sha: String,
        code: &'static str,
        msg: String,
    ) -> Result<PhotoOutcome> {
        if self.client.media_exists(&sha).await? {
            self.blocking(move |o| o.mark_photo_uploaded(&sha)).await?;
            return Ok(PhotoOutcome::Uploaded { bytes: 0 });
        }
        self.blocking(move |o| o.fail_photo(&sha, code, &msg))
            .await?;
        Ok(PhotoOutcome::Failed)
    }

    async fn upload_one(&self, p: &PendingPhoto) -> Result<PhotoOutcome> {
        let path = p.path.clone();
        let read = tokio::task::spawn_blocking(move || {
            std::fs::read(&path).map(|d| {
                let sha = sha256_hex(&d);
                (d, sha)
            })
        })
        .await
        .map_err(ClientError::join)?;
        let sha = p.sha256.clone();
        let data = match read {
            Ok((data, actual)) if actual == p.sha256 => data,
            Ok(_) => {
                let msg = format!("{} changed after it was recorded", p.path.display());
                return self.unreadable_photo(sha, "photo_file_changed", msg).await;
            }
            Err(e) => {
                let msg = format!("cannot read {}: {e}", p.path.display());
                return self.unreadable_photo(sha, "photo_file_missing", msg).await;
            }
        };
        let s = sha.clone();
        self.blocking(move |o| o.note_photo_attempt(&s)).await?;
        let bytes = data.len() as u64;
        // After an earlier try the photo may be there already: ask before resending.
        if p.attempts > 0 && p.upload_id.is_none() && self.client.media_exists(&sha).await? {
            let s = sha.clone();
            self.blocking(move |o| o.mark_photo_uploaded(&s)).await?;
            return Ok(PhotoOutcome::Uploaded { bytes });
        }
        let result = if bytes > self.client.options().resumable_threshold {
            let outbox = self.outbox.clone();
            let s = sha.clone();
            let on_created = move |id: Uuid| {
                // Only a hint for resuming after a restart: no need to wait for it.
                let (outbox, s) = (outbox.clone(), s.clone());
                tokio::task::spawn_blocking(move || outbox.set_photo_upload_id(&s, Some(id)));
            };
            self.client
                .upload_resumable(&sha, Bytes::from(data), p.upload_id, &on_created)
                .await
        } else {
            self.client.put_media(&sha, Bytes::from(data)).await
        };
        match result {
            Ok(_) => {
                let s = sha.clone();
                self.blocking(move |o| o.mark_photo_uploaded(&s)).await?;
                Ok(PhotoOutcome::Uploaded { bytes })
            }
            Err(e) if permanent_photo_error(&e) => {
                let code = e.code().unwrap_or("photo_rejected").to_owned();
                let msg = e.to_string();
                self.blocking(move |o| o.fail_photo(&sha, &code, &msg))
                    .await?;
                Ok(PhotoOutcome::Failed)
            }
            Err(e) => Err(e),
        }
    }

    /// Pushes every pushable mutation; `Ok(true)` when some answered `missing_media`.
    async fn push_pending(
        &self,
        observer: &dyn SyncObserver,
        report: &mut SyncReport,
        photo_started: &HashMap<String, Instant>,
    ) -> Result<bool> {
        let mut pushed: HashSet<Uuid> = HashSet::new();
        let mut missing = false;
        loop {
            let batch: Vec<PendingMutation> = self
                .blocking(|o| o.pushable(MAX_MUTATIONS_PER_PUSH))
                .await?
                .into_iter()
                .filter(|m| !pushed.contains(&m.id))
                .collect();
            if batch.is_empty() {
                break;
            }
            pushed.extend(batch.iter().map(|m| m.id));
            missing |= self
                .push_batch(batch, observer, report, photo_started)
                .await?;
        }
        Ok(missing)
    }

    /// Pushes one batch and settles its mutations; `Ok(true)` when some answered
    /// `missing_media`.
    async fn push_batch(
        &self,
        batch: Vec<PendingMutation>,
        observer: &dyn SyncObserver,
        report: &mut SyncReport,
        photo_started: &HashMap<String, Instant>,
    ) -> Result<bool> {
        let push_started = Instant::now();
        let body = push_body(self.client.device_id(), &batch)?;
        let response = self.client.push_raw(body).await?;
        report.pushes += 1;
        if response.results.len() != batch.len() {
            tracing::warn!(
                sent = batch.len(),
                results = response.results.len(),
                "push answered a different number of results"
            );
        }
        let sent: Vec<Uuid> = batch.iter().map(|m| m.id).collect();
        let results = response.results;
        let settled = self
            .blocking(move |o| o.apply_results(&sent, &results))
            .await?;
        let by_id: HashMap<Uuid, &PendingMutation> = batch.iter().map(|m| (m.id, m)).collect();
        let latency = |id: &Uuid| {
            let start = by_id
                .get(id)
                .into_iter()
                .flat_map(|m| m.photos.iter())
                .filter_map(|sha| photo_started.get(sha))
                .min()
                .copied()
                .unwrap_or(push_started)
                .min(push_started);
            start.elapsed()
        };
        let kind = |id: &Uuid| by_id.get(id).map(|m| m.kind.as_str()).unwrap_or("");
        for id in &settled.done {
            observer.mutation_settled(*id, kind(id), true, latency(id));
        }
        for id in &settled.rejected {
            observer.mutation_settled(*id, kind(id), false, latency(id));
        }
        report.done += settled.done.len() as u64;
        report.rejected += settled.rejected.len() as u64;
        report.missing_media += settled.missing_media.len() as u64;
        Ok(!settled.missing_media.is_empty())
    }

    async fn pull_all(&self, report: &mut SyncReport) -> Result<()> {
        let mut cursor = self.blocking(|o| o.cursor()).await?;
        for _ in 0..MAX_PULL_PAGES {
            let page = self.client.pull(cursor.as_deref(), PULL_LIMIT).await?;
            report.pulled += page.changes.len() as u64;
            let next = page.cursor.clone();
            let changes = page.changes;
            let c = next.clone();
            self.blocking(move |o| o.save_pull(&changes, &c)).await?;
            cursor = Some(next);
            if !page.has_more {
                break;
            }
        }
        Ok(())
    }

    /// Pushes every settled mutation again, byte for byte: a server that holds each
    /// exactly once answers all of them `duplicate`.
    pub async fn replay_check(&self) -> Result<ReplayReport> {
        let done = self.blocking(|o| o.done_mutations()).await?;
        let mut report = ReplayReport::default();
        for batch in done.chunks(MAX_MUTATIONS_PER_PUSH) {
            let body = push_body(self.client.device_id(), batch)?;
            let response = self.client.push_raw(body).await?;
            for (i, m) in batch.iter().enumerate() {
                report.checked += 1;
                match response.results.get(i) {
                    Some(r) if r.id == m.id && r.status == MutationStatus::Duplicate => {
                        report.duplicate += 1;
                    }
                    Some(r) => report.unexpected.push((
                        m.id,
                        format!(
                            "{:?} {}",
                            r.status,
                            r.code.as_deref().or(r.message.as_deref()).unwrap_or("")
                        ),
                    )),
                    None => report.unexpected.push((m.id, "no result".into())),
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_body_embeds_stored_json_verbatim() {
        let m = |id: u128, body: &str| PendingMutation {
            id: Uuid::from_u128(id),
            kind: "feedback.create".into(),
            entity_id: Uuid::from_u128(id + 100),
            body: body.into(),
            photos: vec![],
        };
        let body = push_body(
            "dev \"1\"",
            &[m(1, r#"{"id":"a","z":1,"a":2}"#), m(2, "{}")],
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"device_id":"dev \"1\"","mutations":[{"id":"a","z":1,"a":2},{}]}"#
        );
        let parsed: baithak_api_types::PushRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed.mutations.len(), 2);
    }
}
