//! Which rank of which job this process is, from its launcher's environment: torchrun
//! (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`, the env:// convention
//! every PyTorch launcher follows) or Slurm's `srun` (one task per rank).

use super::DistError;

/// One rank's place in a job and where its rendezvous is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub world_size: usize,
    /// Rank on this node: picks the CUDA device (`cuda:LOCAL_RANK`).
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// Where the values came from, for the log.
    pub launcher: &'static str,
}

impl Launch {
    /// The launch this process is part of, or `None` when it was started on its own (then
    /// it trains alone and never loads Python).
    pub fn detect() -> Result<Option<Launch>, DistError> {
        Launch::from_env(&|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`Launch::detect`] over any variable lookup (tests pass a map).
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Option<Launch>, DistError> {
        let number = |name: &str| -> Result<Option<u64>, DistError> {
            var(name)
                .map(|v| {
                    v.trim().parse().map_err(|_| {
                        DistError::Env(format!("{name}={v:?} is not a non-negative integer"))
                    })
                })
                .transpose()
        };
        let port = |p: u64| {
            u16::try_from(p)
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| DistError::Env(format!("MASTER_PORT={p} is not a TCP port")))
        };
        let (rank, world, local, launcher) = if var("RANK").is_some() || var("WORLD_SIZE").is_some()
        {
            let (Some(rank), Some(world)) = (number("RANK")?, number("WORLD_SIZE")?) else {
                return Err(DistError::Env(
                    "RANK and WORLD_SIZE must be set together (torchrun sets both)".into(),
                ));
            };
            (rank, world, number("LOCAL_RANK")?.unwrap_or(0), "torchrun")
        } else if var("SLURM_STEP_ID").is_some()
            && let (Some(rank), Some(world)) = (number("SLURM_PROCID")?, number("SLURM_NTASKS")?)
        {
            // Only tasks started by srun have a step id: the batch script itself has
            // SLURM_PROCID=0 and SLURM_NTASKS=N too and must not pose as rank 0.
            (rank, world, number("SLURM_LOCALID")?.unwrap_or(0), "slurm")
        } else {
            return Ok(None);
        };
        if world == 0 || rank >= world {
            return Err(DistError::Env(format!(
                "rank {rank} of world size {world}: the rank must be below the world size"
            )));
        }
        let master_addr = match var("MASTER_ADDR") {
            Some(a) => a,
            None if launcher == "slurm" => {
                let list = var("SLURM_JOB_NODELIST")
                    .or_else(|| var("SLURM_NODELIST"))
                    .ok_or_else(|| {
                        DistError::Env("SLURM_JOB_NODELIST is not set; set MASTER_ADDR".into())
                    })?;
                first_host(&list)?
            }
            None => "127.0.0.1".into(),
        };
        let master_port = match number("MASTER_PORT")? {
            Some(p) => port(p)?,
            // The same on every task of a Slurm job, different between jobs sharing a node.
            None if launcher == "slurm" => {
                20000 + (number("SLURM_JOB_ID")?.unwrap_or(0) % 20000) as u16
            }
            None => 29500,
        };
        Ok(Some(Launch {
            rank: rank as usize,
            world_size: world as usize,
            local_rank: local as usize,
            master_addr,
            master_port,
            launcher,
        }))
    }
}

/// The first host of a Slurm node list, as `scontrol show hostnames LIST | head -1` prints
/// it, without needing `scontrol` (and the cluster's slurm.conf) on the compute node:
/// `gpu-a[01-04,07],gpu-b3` → `gpu-a01`, `r[3,5]n[01-02]` → `r3n01`.
pub fn first_host(nodelist: &str) -> Result<String, DistError> {
    let bad = || DistError::Env(format!("cannot read SLURM_JOB_NODELIST={nodelist:?}"));
    let mut depth = 0i32;
    let end = nodelist
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            c == ',' && depth == 0
        })
        .map_or(nodelist.len(), |(i, _)| i);
    let mut host = String::new();
    let mut rest = nodelist[..end].trim();
    while let Some(open) = rest.find('[') {
        let close = rest[open..].find(']').map(|c| open + c).ok_or_else(bad)?;
        host.push_str(&rest[..open]);
        let first = rest[open + 1..close].split([',', '-']).next().unwrap_or("");
        if first.is_empty() {
            return Err(bad());
        }
        host.push_str(first);
        rest = &rest[close + 1..];
    }
    host.push_str(rest);
    if host.is_empty() || host.contains(']') {
        return Err(bad());
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn launch(pairs: &[(&str, &str)]) -> Result<Option<Launch>, DistError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Launch::from_env(&|k| map.get(k).cloned())
    }

    #[test]
    fn slurm_node_lists() {
        assert_eq!(first_host("gpu-a[01-04,07],gpu-b3").unwrap(), "gpu-a01");
        assert_eq!(first_host("node7,node9").unwrap(), "node7");
        assert_eq!(first_host("localhost").unwrap(), "localhost");
        assert_eq!(first_host("r[3,5]n[01-02],x").unwrap(), "r3n01");
        assert!(first_host("a[01-").is_err());
        assert!(first_host("").is_err());
    }

    #[test]
    fn torchrun_environment() {
        let l = launch(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "29400"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            l,
            Launch {
                rank: 1,
                world_size: 2,
                local_rank: 1,
                master_addr: "10.0.0.1".into(),
                master_port: 29400,
                launcher: "torchrun",
            }
        );
    }

    #[test]
    fn slurm_environment_needs_a_step() {
        let batch_shell = [
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_JOB_ID", "123"),
        ];
        assert_eq!(launch(&batch_shell).unwrap(), None);
        let mut task = batch_shell.to_vec();
        task.extend([
            ("SLURM_STEP_ID", "0"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_JOB_NODELIST", "gpu[07-08]"),
        ]);
        let l = launch(&task).unwrap().unwrap();
        assert_eq!((l.rank, l.world_size, l.launcher), (0, 4, "slurm"));
        assert_eq!((l.master_addr.as_str(), l.master_port), ("gpu07", 20123));
    }

    #[test]
    fn alone_and_bad_values() {
        assert_eq!(launch(&[]).unwrap(), None);
        for bad in [
            vec![("RANK", "0")],
            vec![("RANK", "2"), ("WORLD_SIZE", "2")],
            vec![("RANK", "x"), ("WORLD_SIZE", "2")],
            vec![("RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_PORT", "70000")],
        ] {
            assert!(matches!(launch(&bad), Err(DistError::Env(_))), "{bad:?}");
        }
    }
}
