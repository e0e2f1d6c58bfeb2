//! An ordered, bounded parallel map: jobs run on worker threads, results are
//! consumed on the calling thread in job order, and at most `window` jobs are
//! in flight, which bounds memory to `window` results whatever the input size.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

/// How many worker threads to use when the caller does not say: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs `work` over `jobs` on `threads` workers, each with its own state from
/// `new_state`, and hands results to `consume` in job order. Stops issuing jobs
/// at the first error from `consume` and returns it once in-flight jobs end.
pub fn run_ordered<J, R, S, E>(
    jobs: impl Iterator<Item = J>,
    threads: usize,
    new_state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, J) -> R + Sync,
    mut consume: impl FnMut(R) -> Result<(), E>,
) -> Result<(), E>
where
    J: Send,
    R: Send,
{
    let threads = threads.max(1);
    let window = threads * 2;
    let (job_sender, job_receiver) = sync_channel::<(u64, J)>(window);
    let job_receiver = Mutex::new(job_receiver);
    std::thread::scope(|scope| {
        // Moved in so it is dropped when this closure returns, early or not:
        // that is what lets idle workers see the end of the jobs and exit.
        let job_sender = job_sender;
        let (result_sender, result_receiver) = sync_channel::<(u64, R)>(window);
        for _ in 0..threads {
            let (job_receiver, result_sender, new_state, work) =
                (&job_receiver, result_sender.clone(), &new_state, &work);
            scope.spawn(move || {
                let mut state = new_state();
                loop {
                    // A poisoned lock means another worker panicked; the
                    // scope re-raises that panic, so just stop here.
                    let next = match job_receiver.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    let Ok((sequence, job)) = next else { return };
                    if result_sender.send((sequence, work(&mut state, job))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(result_sender);

        let mut jobs = jobs.fuse();
        let mut exhausted = false;
        let (mut issued, mut consumed) = (0u64, 0u64);
        let mut pending = BTreeMap::new();
        loop {
            while !exhausted && issued - consumed < window as u64 {
                match jobs.next() {
                    Some(job) => {
                        job_sender.send((issued, job)).expect("workers outlive the job sender");
                        issued += 1;
                    }
                    None => exhausted = true,
                }
            }
            if exhausted && consumed == issued {
                return Ok(());
            }
            let (sequence, result) = result_receiver.recv().expect("a worker panicked while jobs were in flight");
            pending.insert(sequence, result);
            while let Some(result) = pending.remove(&consumed) {
                consumed += 1;
                consume(result)?;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_arrive_in_order_whatever_the_timing() {
        let mut seen = Vec::new();
        let outcome: Result<(), ()> = run_ordered(
            0..200u64,
            3,
            || (),
            |_, job| {
                if job % 7 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                job * 2
            },
            |result| {
                seen.push(result);
                Ok(())
            },
        );
        assert!(outcome.is_ok());
        assert_eq!(seen, (0..200).map(|job| job * 2).collect::<Vec<_>>());
    }

    #[test]
    fn stops_at_the_first_consumer_error_without_running_everything() {
        let started = std::sync::atomic::AtomicU64::new(0);
        let outcome = run_ordered(
            0..10_000u64,
            2,
            || (),
            |_, job| {
                started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                job
            },
            |result| if result == 5 { Err(result) } else { Ok(()) },
        );
        assert_eq!(outcome, Err(5));
        assert!(started.into_inner() < 100, "kept working after the error");
    }
}
