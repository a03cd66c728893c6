//! Spark-style console progress on stderr: `[Stage 3:=======>      (37 + 2) / 200]`, shown
//! once a job has run for about half a second, only when stderr is a terminal. Failed task
//! attempts show as `(37 + 2, 1 failed)`, a stage running again as `[Stage 3 (retry 1):…]`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use stagesql::events::{Event, Listener};

/// One bar per running stage. Bars are drawn into a hidden target until the job has run for
/// the delay (half a second, or `STAGESQL_PROGRESS_DELAY_MS`); a short job never shows
/// anything.
pub struct ProgressBars {
    state: Arc<Mutex<State>>,
    delay: Duration,
}

#[derive(Default)]
struct State {
    /// The job being shown, and whether its bars are visible yet.
    job: Option<(usize, bool)>,
    bars: BTreeMap<usize, StageBar>,
    multi: Option<MultiProgress>,
}

struct StageBar {
    bar: ProgressBar,
    running: u64,
    done: u64,
    failed: u64,
}

const DELAY: Duration = Duration::from_millis(500);

impl ProgressBars {
    /// Bars that appear once a job has run for `STAGESQL_PROGRESS_DELAY_MS` milliseconds
    /// when set (0: at once), for half a second otherwise.
    pub fn from_env() -> Result<Self, String> {
        let delay = match std::env::var("STAGESQL_PROGRESS_DELAY_MS") {
            Err(_) => DELAY,
            Ok(value) => value
                .trim()
                .parse()
                .map(Duration::from_millis)
                .map_err(|_| {
                    format!(
                        "STAGESQL_PROGRESS_DELAY_MS must be a number of milliseconds, got `{value}`"
                    )
                })?,
        };
        Ok(Self {
            state: Arc::default(),
            delay,
        })
    }
}

impl Listener for ProgressBars {
    fn on_event(&self, event: &Event) {
        let mut state = self.state.lock().expect("progress lock poisoned");
        match event {
            &Event::JobStart { job, .. } => {
                state.job = Some((job, false));
                state.multi = Some(MultiProgress::with_draw_target(ProgressDrawTarget::hidden()));
                let shared = self.state.clone();
                let delay = self.delay;
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let mut state = shared.lock().expect("progress lock poisoned");
                    if state.job == Some((job, false)) {
                        state.job = Some((job, true));
                        if let Some(multi) = &state.multi {
                            multi.set_draw_target(ProgressDrawTarget::stderr());
                        }
                    }
                });
            }
            &Event::StageSubmitted {
                stage,
                tasks,
                attempt,
                ..
            } => {
                let Some(multi) = state.multi.clone() else {
                    return;
                };
                let bar = multi.add(ProgressBar::new(tasks as u64));
                bar.set_style(
                    ProgressStyle::with_template("[Stage {prefix}:{bar:40} ({msg}) / {len}]")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(match attempt {
                    1 => stage.to_string(),
                    n => format!("{stage} (retry {})", n - 1),
                });
                bar.set_message("0 + 0");
                bar.enable_steady_tick(Duration::from_millis(200));
                state.bars.insert(
                    stage,
                    StageBar {
                        bar,
                        running: 0,
                        done: 0,
                        failed: 0,
                    },
                );
            }
            &Event::TaskStart { stage, .. } => update(&mut state.bars, stage, |s| s.running += 1),
            Event::TaskEnd { stage, error, .. } => update(&mut state.bars, *stage, |s| {
                s.running = s.running.saturating_sub(1);
                match error {
                    None => s.done += 1,
                    Some(_) => s.failed += 1,
                }
            }),
            Event::StageFailed { stage, .. } | Event::StageCompleted { stage, .. } => {
                if let Some(stage) = state.bars.remove(stage) {
                    stage.bar.finish_and_clear();
                }
            }
            Event::JobEnd { .. } => {
                for (_, stage) in std::mem::take(&mut state.bars) {
                    stage.bar.finish_and_clear();
                }
                if let Some(multi) = state.multi.take() {
                    let _ = multi.clear();
                }
                state.job = None;
            }
            Event::TasksMeasured { .. }
            | Event::Advisory { .. }
            | Event::CacheRead { .. }
            | Event::CacheStored { .. }
            | Event::CacheRemoved { .. } => {}
        }
    }
}

fn update(bars: &mut BTreeMap<usize, StageBar>, stage: usize, change: impl FnOnce(&mut StageBar)) {
    let Some(stage) = bars.get_mut(&stage) else {
        return;
    };
    change(stage);
    stage.bar.set_position(stage.done);
    stage.bar.set_message(match stage.failed {
        0 => format!("{} + {}", stage.done, stage.running),
        failed => format!("{} + {}, {failed} failed", stage.done, stage.running),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar_text(bars: &ProgressBars, stage: usize) -> String {
        let state = bars.state.lock().unwrap();
        let bar = &state.bars[&stage].bar;
        format!(
            "[Stage {}: ({}) / {}]",
            bar.prefix(),
            bar.message(),
            bar.length().unwrap()
        )
    }

    fn submitted(job: usize, stage: usize, attempt: usize, tasks: usize) -> Event {
        Event::StageSubmitted {
            job,
            stage,
            attempt,
            tasks,
            stage_tasks: tasks,
            decisions: Vec::new(),
        }
    }

    fn task_start(job: usize, stage: usize, task: usize, attempt: usize) -> Event {
        Event::TaskStart {
            job,
            stage,
            task,
            attempt,
            stage_attempt: 1,
            executor: 0,
            slot: 0,
            start_ms: 0.0,
        }
    }

    fn task_end(job: usize, stage: usize, task: usize, error: Option<&str>) -> Event {
        Event::TaskEnd {
            job,
            stage,
            task,
            attempt: 1,
            error: error.map(String::from),
            metrics: Box::default(),
        }
    }

    #[test]
    fn failed_attempts_and_stage_retries_show_in_the_bar() {
        let bars = ProgressBars {
            state: Arc::default(),
            delay: Duration::from_secs(3600),
        };
        let (job, stage) = (1, 3);
        bars.on_event(&Event::JobStart {
            job,
            stages: 1,
            sql: "SELECT 1".into(),
            at: None,
            slots: 2,
            planned: Vec::new(),
        });
        bars.on_event(&submitted(job, stage, 1, 4));
        for task in 0..2 {
            bars.on_event(&task_start(job, stage, task, 1));
        }
        bars.on_event(&task_end(job, stage, 0, None));
        bars.on_event(&task_end(job, stage, 1, Some("injected")));
        bars.on_event(&task_start(job, stage, 1, 2));
        assert_eq!(bar_text(&bars, stage), "[Stage 3: (1 + 1, 1 failed) / 4]");
        // The stage's attempt ends (its tasks share state) and a second one runs every task.
        bars.on_event(&Event::StageFailed {
            job,
            stage,
            attempt: 1,
            reason: "task 1 failed".into(),
        });
        bars.on_event(&submitted(job, stage, 2, 4));
        bars.on_event(&task_start(job, stage, 0, 3));
        assert_eq!(bar_text(&bars, stage), "[Stage 3 (retry 1): (0 + 1) / 4]");
        bars.on_event(&Event::JobEnd {
            job,
            status: stagesql::events::JobStatus::Cancelled,
            error: None,
        });
        assert!(bars.state.lock().unwrap().bars.is_empty());
    }
}
