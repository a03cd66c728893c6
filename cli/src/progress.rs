//! Spark-style console progress on stderr: `[Stage 3:=======>      (37 + 2) / 200]`, shown
//! for jobs that run longer than about half a second, only when stderr is a terminal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use stagesql::events::{Event, Listener};

/// One bar per running stage, hidden until the job has run for half a second.
#[derive(Default)]
pub struct ProgressBars {
    stages: Mutex<HashMap<usize, StageBar>>,
}

struct StageBar {
    bar: ProgressBar,
    running: u64,
    done: u64,
}

const DELAY: Duration = Duration::from_millis(500);

impl Listener for ProgressBars {
    fn on_event(&self, event: &Event) {
        let mut stages = self.stages.lock().expect("progress lock poisoned");
        match *event {
            Event::StageSubmitted { stage, tasks, .. } => {
                let bar =
                    ProgressBar::with_draw_target(Some(tasks as u64), ProgressDrawTarget::hidden());
                bar.set_style(
                    ProgressStyle::with_template(
                        "[Stage {prefix}:{bar:40.green/black} ({msg}) / {len}]",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(stage.to_string());
                bar.set_message("0 + 0");
                stages.insert(
                    stage,
                    StageBar {
                        bar,
                        running: 0,
                        done: 0,
                    },
                );
            }
            Event::TaskStart { stage, .. } => update(&mut stages, stage, |s| s.running += 1),
            Event::TaskEnd {
                stage, succeeded, ..
            } => update(&mut stages, stage, |s| {
                s.running = s.running.saturating_sub(1);
                s.done += u64::from(succeeded);
            }),
            Event::StageCompleted { stage, .. } => {
                if let Some(stage) = stages.remove(&stage) {
                    stage.bar.finish_and_clear();
                }
            }
            Event::JobEnd { .. } => {
                for (_, stage) in stages.drain() {
                    stage.bar.finish_and_clear();
                }
            }
            Event::JobStart { .. } => {}
        }
    }
}

fn update(stages: &mut HashMap<usize, StageBar>, stage: usize, change: impl FnOnce(&mut StageBar)) {
    let Some(stage) = stages.get_mut(&stage) else {
        return;
    };
    change(stage);
    stage.bar.set_position(stage.done);
    stage
        .bar
        .set_message(format!("{} + {}", stage.done, stage.running));
    if stage.bar.is_hidden() && stage.bar.elapsed() >= DELAY {
        stage.bar.set_draw_target(ProgressDrawTarget::stderr());
    }
}
