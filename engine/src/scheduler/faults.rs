//! Faults a test asks for: task attempts that fail after their work is done, chosen by name
//! (`stagesql.test.fail_tasks`) or at random from a seed (`stagesql.test.fault_seed`), and
//! map outputs lost before their readers start (`stagesql.test.lose_shuffle_output`).
//!
//! An injected failure strikes after the attempt read all its input and committed its
//! output: the hardest case for a retry, which must read everything again and replace it.

use std::collections::HashSet;
use std::hash::Hasher;

use crate::stages::StageId;

/// The faults of one job.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Task attempts that fail: (stage, task, attempt).
    pub failed_attempts: HashSet<(StageId, usize, usize)>,
    /// Random failures: seed and probability per attempt.
    pub random: Option<RandomFaults>,
    /// Map outputs lost before the stages reading them start: (stage, map task, stage
    /// attempt that wrote the output).
    pub lost_outputs: HashSet<(StageId, usize, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomFaults {
    pub seed: u64,
    pub probability: f64,
}

impl Faults {
    /// Why attempt `attempt` of task `task` of `stage` fails on purpose, if it does. Random
    /// failures spare the last attempt `max_attempts` allows, so that they never fail a job.
    pub fn injected_failure(
        &self,
        stage: StageId,
        task: usize,
        attempt: usize,
        max_attempts: usize,
    ) -> Option<String> {
        if self.failed_attempts.contains(&(stage, task, attempt)) {
            return Some(format!(
                "injected failure of stage {stage} task {task} attempt {attempt} (stagesql.test.fail_tasks)"
            ));
        }
        let random = self.random?;
        (attempt < max_attempts && random.strikes(stage, task, attempt)).then(|| {
            format!(
                "injected failure of stage {stage} task {task} attempt {attempt} (stagesql.test.fault_seed = {})",
                random.seed
            )
        })
    }
}

impl RandomFaults {
    /// A fixed function of the seed and the attempt, so that a run repeats exactly.
    fn strikes(&self, stage: StageId, task: usize, attempt: usize) -> bool {
        // SipHash with fixed keys: the same on every run and machine.
        let mut hasher = std::hash::DefaultHasher::new();
        for value in [self.seed, stage as u64, task as u64, attempt as u64] {
            hasher.write_u64(value);
        }
        (hasher.finish() as f64 / u64::MAX as f64) < self.probability
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_faults_repeat_spare_the_last_attempt_and_follow_the_probability() {
        let faults = Faults {
            random: Some(RandomFaults {
                seed: 7,
                probability: 0.25,
            }),
            ..Default::default()
        };
        let strikes = |attempt| {
            (0..4000)
                .filter(|&task| faults.injected_failure(1, task, attempt, 4).is_some())
                .count()
        };
        assert_eq!(strikes(1), strikes(1));
        assert!((800..1200).contains(&strikes(1)), "{}", strikes(1));
        assert_eq!(strikes(4), 0, "the last allowed attempt never fails");
    }
}
