//! Which part of a corpus this process tokenizes: shard `I` of `N`, from `--shard I/N` or
//! from the environment of the engine that started the process (a Slurm array, a
//! Kubernetes Indexed Job, torchrun). Scaling out is the cluster's job; vqtokenize only
//! has to know its index and agree with the other tasks on who owns which input.
//!
//! An input belongs to shard `stable_u64(key) mod N`, `key` being its output path relative
//! to the output folder (unique per job, and the same on every host whatever the corpus'
//! mount point or the order a file system lists it in). So the N shards partition the
//! corpus, and adding a file moves no other file between shards. The price of a hash is
//! balance: shards differ by about √(files / N) files.

use std::fmt;
use std::str::FromStr;

use crate::error::{InferError, Result};

/// Shard `index` of `count` (`index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole corpus as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    fn new(index: usize, count: usize, from: &str) -> Result<Shard> {
        if count == 0 {
            return Err(InferError::invalid("shard", format!("{from}: 0 shards")));
        }
        if index >= count {
            return Err(InferError::invalid(
                "shard",
                format!("{from}: index {index} is not below the shard count {count}"),
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether the job with this key (see the module doc) is this shard's.
    pub fn owns(&self, key: &str) -> bool {
        vqtok_core::hash::stable_u64(key) % self.count as u64 == self.index as u64
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, e.g. `0/3`.
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not I/N (e.g. 0/3)"))?;
        let i: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("`{i}` in `{s}` is not a shard index"))?;
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("`{n}` in `{s}` is not a shard count"))?;
        Shard::new(i, n, "--shard").map_err(|e| e.to_string())
    }
}

/// The shard this process runs, and where that came from (printed, so a wrong guess
/// shows in the job's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub shard: Shard,
    pub source: String,
}

/// Slurm array task index; the shard count comes from `--shards` or, for an array whose
/// ids are exactly 0..N-1, from `SLURM_ARRAY_TASK_COUNT`.
pub const SLURM_ARRAY_TASK_ID: &str = "SLURM_ARRAY_TASK_ID";
/// Kubernetes Indexed Job completion index (the count is the Job's `completions`, which the
/// pod does not see: `--shards` is required).
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";
/// torchrun / torch.distributed rank, with `WORLD_SIZE`.
pub const RANK: &str = "RANK";

/// `--shard` if given; else the first engine whose variable is set, in the order Slurm,
/// Kubernetes, torchrun; else the whole corpus. `shards` is `--shards`. `env` reads a
/// variable (the process environment in the binary, a table in tests).
pub fn resolve(
    flag: Option<Shard>,
    shards: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved> {
    if let Some(shard) = flag {
        if shards.is_some_and(|n| n != shard.count) {
            return Err(InferError::invalid(
                "shards",
                format!(
                    "--shards {} contradicts --shard {shard}",
                    shards.unwrap_or(0)
                ),
            ));
        }
        return Ok(Resolved {
            shard,
            source: format!("--shard {shard}"),
        });
    }
    let number = |name: &str| -> Result<Option<usize>> {
        match env(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                InferError::invalid("shard", format!("${name}={v:?} is not a whole number"))
            }),
        }
    };
    let with_count = |index: usize, count: usize, source: String| {
        Shard::new(index, count, &source).map(|shard| Resolved { shard, source })
    };
    if let Some(id) = number(SLURM_ARRAY_TASK_ID)? {
        if let Some(n) = shards {
            return with_count(id, n, format!("${SLURM_ARRAY_TASK_ID}={id}, --shards {n}"));
        }
        // SLURM_ARRAY_TASK_COUNT counts the ids of *this* submission: a resubmitted single
        // task (--array=1) sees 1, a sparse array (0,2,5) sees 3. Only an array of exactly
        // 0..N-1 says N.
        let count = number("SLURM_ARRAY_TASK_COUNT")?;
        let (min, max) = (
            number("SLURM_ARRAY_TASK_MIN")?,
            number("SLURM_ARRAY_TASK_MAX")?,
        );
        return match (count, min, max) {
            (Some(n), Some(0), Some(max)) if n > 0 && max == n - 1 => with_count(
                id,
                n,
                format!("${SLURM_ARRAY_TASK_ID}={id} of $SLURM_ARRAY_TASK_COUNT={n}"),
            ),
            _ => Err(InferError::invalid(
                "shards",
                format!(
                    "${SLURM_ARRAY_TASK_ID}={id}, but this array's ids are not 0..N-1 \
                     (SLURM_ARRAY_TASK_COUNT={count:?}, MIN={min:?}, MAX={max:?}), so they \
                     do not say how many shards there are; give --shards N"
                ),
            )),
        };
    }
    if let Some(index) = number(JOB_COMPLETION_INDEX)? {
        let n = shards.ok_or_else(|| {
            InferError::invalid(
                "shards",
                format!(
                    "${JOB_COMPLETION_INDEX}={index} (a Kubernetes Indexed Job) needs --shards N, \
                     the Job's completions"
                ),
            )
        })?;
        return with_count(
            index,
            n,
            format!("${JOB_COMPLETION_INDEX}={index}, --shards {n}"),
        );
    }
    if let Some(rank) = number(RANK)? {
        let world = number("WORLD_SIZE")?;
        let n = match (shards, world) {
            (Some(n), Some(w)) if n != w => {
                return Err(InferError::invalid(
                    "shards",
                    format!("--shards {n} contradicts $WORLD_SIZE={w}"),
                ));
            }
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => {
                return Err(InferError::invalid(
                    "shards",
                    format!("${RANK}={rank} without $WORLD_SIZE; give --shards N"),
                ));
            }
        };
        return with_count(rank, n, format!("${RANK}={rank} of $WORLD_SIZE={n}"));
    }
    if let Some(n) = shards {
        return Err(InferError::invalid(
            "shards",
            format!(
                "--shards {n} without a shard index: give --shard I/{n}, or run under a Slurm \
                 array, a Kubernetes Indexed Job or torchrun"
            ),
        ));
    }
    Ok(Resolved {
        shard: Shard::ALL,
        source: "no shard given: the whole input".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("dir{}/clip{i}.vqt.safetensors", i % 7))
            .collect()
    }

    #[test]
    fn shards_partition_the_corpus() {
        let keys = keys(1000);
        for count in [1, 2, 3, 7, 16] {
            let mut owners = vec![0usize; keys.len()];
            let mut sizes = vec![0usize; count];
            for (index, size) in sizes.iter_mut().enumerate() {
                let shard = Shard { index, count };
                for (k, key) in keys.iter().enumerate() {
                    if shard.owns(key) {
                        owners[k] += 1;
                        *size += 1;
                    }
                }
            }
            assert!(
                owners.iter().all(|&o| o == 1),
                "each key in exactly one of {count}"
            );
            // Balance of a hash: within 5 standard deviations of n/N.
            let mean = keys.len() as f64 / count as f64;
            for s in sizes {
                assert!(
                    (s as f64 - mean).abs() <= 5.0 * mean.sqrt() + 1.0,
                    "{s} vs {mean}"
                );
            }
        }
    }

    #[test]
    fn assignment_ignores_order_and_added_files_move_nothing_else() {
        let shard = |key: &str| (0..3).find(|&i| Shard { index: i, count: 3 }.owns(key));
        let before: Vec<_> = keys(200).iter().map(|k| shard(k)).collect();
        // The grown corpus, listed in another order: the new file first, the rest reversed.
        let mut grown = keys(200);
        grown.reverse();
        grown.insert(0, "new/extra.vqt.safetensors".into());
        let mut after: Vec<_> = grown[1..].iter().map(|k| shard(k)).collect();
        after.reverse();
        assert_eq!(after, before, "old files keep their shard");
        // Pinned: a shard run by an older vqtokenize must agree with a newer one.
        assert_eq!(
            (0..8)
                .map(|i| shard(&format!("clip{i}.vqt.safetensors")).unwrap())
                .collect::<Vec<_>>(),
            PINNED_SHARDS
        );
    }

    /// Shards of `clip0 … clip7.vqt.safetensors` among 3 (sha256, first 8 bytes
    /// big-endian, mod 3; `python3 -c 'import hashlib; …'` gives the same).
    const PINNED_SHARDS: [usize; 8] = [1, 0, 0, 2, 1, 0, 1, 0];

    #[test]
    fn flag_parsing() {
        assert_eq!("2/5".parse::<Shard>(), Ok(Shard { index: 2, count: 5 }));
        for bad in ["5/5", "1/0", "3", "a/2", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_flag_wins_and_must_agree_with_shards() {
        let e = env(&[(SLURM_ARRAY_TASK_ID, "1"), ("SLURM_ARRAY_TASK_COUNT", "3")]);
        let r = resolve(Some(Shard { index: 0, count: 2 }), None, &e).unwrap();
        assert_eq!(r.shard, Shard { index: 0, count: 2 });
        assert!(r.source.contains("--shard 0/2"));
        assert!(resolve(Some(Shard { index: 0, count: 2 }), Some(3), &e).is_err());
    }

    #[test]
    fn slurm_array_ids_and_counts() {
        let full = env(&[
            (SLURM_ARRAY_TASK_ID, "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "2"),
        ]);
        let r = resolve(None, None, &full).unwrap();
        assert_eq!(r.shard, Shard { index: 2, count: 3 });
        assert!(r.source.contains("SLURM_ARRAY_TASK_ID=2"), "{}", r.source);
        // A resubmitted single task: COUNT=1, MIN=MAX=1. Without --shards it must not
        // guess; with it, it is shard 1 of 3.
        let resubmitted = env(&[
            (SLURM_ARRAY_TASK_ID, "1"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "1"),
        ]);
        let e = resolve(None, None, &resubmitted).unwrap_err();
        assert!(e.to_string().contains("--shards"), "{e}");
        let r = resolve(None, Some(3), &resubmitted).unwrap();
        assert_eq!(r.shard, Shard { index: 1, count: 3 });
        // An id beyond --shards is an error, not a silent empty shard.
        assert!(resolve(None, Some(1), &resubmitted).is_err());
        assert!(resolve(None, None, &env(&[(SLURM_ARRAY_TASK_ID, "x")])).is_err());
    }

    #[test]
    fn kubernetes_and_torchrun() {
        let k8s = env(&[(JOB_COMPLETION_INDEX, "4")]);
        assert!(
            resolve(None, None, &k8s).is_err(),
            "completions are not visible"
        );
        let r = resolve(None, Some(5), &k8s).unwrap();
        assert_eq!(r.shard, Shard { index: 4, count: 5 });
        assert!(r.source.contains(JOB_COMPLETION_INDEX));
        let torch = env(&[(RANK, "1"), ("WORLD_SIZE", "2")]);
        assert_eq!(
            resolve(None, None, &torch).unwrap().shard,
            Shard { index: 1, count: 2 }
        );
        assert!(resolve(None, Some(3), &torch).is_err());
        assert!(resolve(None, None, &env(&[(RANK, "0")])).is_err());
        // Slurm first: an array task that also has RANK set (srun inside) is an array task.
        let both = env(&[(SLURM_ARRAY_TASK_ID, "0"), (RANK, "1"), ("WORLD_SIZE", "2")]);
        assert_eq!(
            resolve(None, Some(4), &both).unwrap().shard,
            Shard { index: 0, count: 4 }
        );
    }

    #[test]
    fn nothing_set_is_the_whole_corpus_and_a_bare_count_is_refused() {
        let none = env(&[]);
        let r = resolve(None, None, &none).unwrap();
        assert_eq!(r.shard, Shard::ALL);
        assert!(Shard::ALL.owns("anything"));
        assert!(resolve(None, Some(3), &none).is_err());
    }
}
