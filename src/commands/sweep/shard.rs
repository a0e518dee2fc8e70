//! Which cells a process runs: `--shard I/N` takes cell `k` (0-based, in grid order) when
//! `k mod N = I`, so every shard gets a spread of the grid (small and large batch sizes alike)
//! and N shards together run every cell once. `--shard auto` reads I and N from a Slurm job
//! array (`SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_STEP`,
//! `SLURM_ARRAY_TASK_COUNT`); `--shard auto/N` also from a Kubernetes Indexed Job
//! (`JOB_COMPLETION_INDEX`), which does not tell N.

use anyhow::{Context, Result, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole grid.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn owns(&self, cell: usize) -> bool {
        cell % self.count == self.index
    }

    /// `--shard` as given (`I/N`, `auto`, `auto/N`), resolved with `env` (the process
    /// environment, or a test's).
    pub fn parse(spec: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        let (i, n) = spec.split_once('/').map_or((spec, None), |(i, n)| (i, Some(n)));
        let n: Option<usize> = n
            .map(|n| n.trim().parse().ok().filter(|&n| n > 0).with_context(|| format!("--shard {spec}: N must be a whole number of shards, at least 1, got '{n}'")))
            .transpose()?;
        let shard = if i.trim() == "auto" {
            Self::from_env(spec, n, env)?
        } else {
            let index = i.trim().parse().ok().with_context(|| format!("--shard {spec}: expected I/N (0 ≤ I < N), auto or auto/N; '{i}' is not a shard index"))?;
            let count = n.with_context(|| format!("--shard {spec}: expected I/N, e.g. --shard 0/4"))?;
            Shard { index, count }
        };
        if shard.index >= shard.count {
            bail!("--shard {spec}: shard {} of {} does not exist (shards are numbered 0 to {})", shard.index, shard.count, shard.count - 1);
        }
        Ok(shard)
    }

    fn from_env(spec: &str, n: Option<usize>, env: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        let number = |var: &str| -> Result<Option<usize>> {
            env(var).map(|v| v.trim().parse::<usize>().with_context(|| format!("--shard {spec}: ${var} is '{v}', not a whole number"))).transpose()
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            let count = number("SLURM_ARRAY_TASK_COUNT")?.with_context(|| format!("--shard {spec}: $SLURM_ARRAY_TASK_ID is set but not $SLURM_ARRAY_TASK_COUNT"))?;
            if id < min || (id - min) % step != 0 {
                bail!("--shard {spec}: array task {id} is not in the array's range (min {min}, step {step})");
            }
            let index = (id - min) / step;
            if let Some(n) = n.filter(|&n| n != count) {
                bail!("--shard {spec}: the Slurm array has {count} tasks, not {n}");
            }
            return Ok(Shard { index, count });
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = n.with_context(|| format!("--shard {spec}: in a Kubernetes Indexed Job give the number of completions: --shard auto/N"))?;
            return Ok(Shard { index, count });
        }
        bail!("--shard {spec}: neither $SLURM_ARRAY_TASK_ID (a Slurm job array) nor $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; give --shard I/N")
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn fixed_slurm_and_kubernetes_shards() {
        assert_eq!(Shard::parse("2/4", env(&[])).unwrap(), Shard { index: 2, count: 4 });
        // an array --array=1-7:2 (tasks 1, 3, 5, 7): task 5 is the third shard of four
        let slurm = [("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_STEP", "2"), ("SLURM_ARRAY_TASK_COUNT", "4")];
        assert_eq!(Shard::parse("auto", env(&slurm)).unwrap(), Shard { index: 2, count: 4 });
        assert!(Shard::parse("auto/3", env(&slurm)).unwrap_err().to_string().contains("has 4 tasks"));
        let k8s = [("JOB_COMPLETION_INDEX", "3")];
        assert_eq!(Shard::parse("auto/4", env(&k8s)).unwrap(), Shard { index: 3, count: 4 });
        assert!(Shard::parse("auto", env(&k8s)).unwrap_err().to_string().contains("auto/N"));
        assert!(Shard::parse("auto", env(&[])).unwrap_err().to_string().contains("neither"));
        assert!(Shard::parse("4/4", env(&[])).unwrap_err().to_string().contains("does not exist"));
        assert!(Shard::parse("1/0", env(&[])).is_err());
        // N shards take every cell exactly once
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        assert!((0..10).all(|k| shards.iter().filter(|s| s.owns(k)).count() == 1));
    }
}
