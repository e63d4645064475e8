//! What the trainer adds for a data-parallel job (`crate::dist`): the loader positions of
//! every rank in one checkpoint, and one digest of the weights that every rank must agree
//! on.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::train::data::DataState;
use crate::train::error::TrainError;

/// `train_state.json`'s `data`: one position for a single process (the format every
/// checkpoint had before data parallelism), every rank's for a job.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum SavedData {
    Ranks {
        world_size: usize,
        ranks: Vec<DataState>,
    },
    One(DataState),
}

/// The `data` value of a checkpoint from every rank's position, in rank order.
pub fn saved_data(mut ranks: Vec<DataState>) -> serde_json::Value {
    let saved = if ranks.len() == 1 {
        SavedData::One(ranks.remove(0))
    } else {
        SavedData::Ranks {
            world_size: ranks.len(),
            ranks,
        }
    };
    serde_json::to_value(saved).expect("plain data")
}

/// This rank's position in a checkpoint's `data`. An exact resume needs the world size
/// the checkpoint was written with (each rank's position is its own slice's).
pub fn rank_data(
    value: &serde_json::Value,
    rank: usize,
    world_size: usize,
) -> Result<DataState, String> {
    let saved: SavedData = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let written_by = match &saved {
        SavedData::One(_) => 1,
        SavedData::Ranks { world_size, ranks } if ranks.len() == *world_size => *world_size,
        SavedData::Ranks { world_size, ranks } => {
            return Err(format!(
                "world size {world_size} with {} rank positions",
                ranks.len()
            ));
        }
    };
    if written_by != world_size {
        return Err(format!(
            "the checkpoint was written by a job of {written_by} rank(s), this one has \
             {world_size}; resume with {written_by} (each rank continues its own slice of the data)"
        ));
    }
    Ok(match saved {
        SavedData::One(state) => state,
        SavedData::Ranks { mut ranks, .. } => ranks.swap_remove(rank),
    })
}

/// Every variable of `stores` (model, discriminator), sorted by name: the same list, in
/// the same order, on every rank, for collectives over all of them.
pub fn all_variables(stores: &[&VarStore]) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = stores
        .iter()
        .flat_map(|vs| vs.variables().into_iter())
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// sha256 over the names and bytes of every variable of `stores`: equal on every rank of a
/// healthy job (the end of a run checks it).
pub fn weights_digest(stores: &[&VarStore]) -> String {
    let mut h = Sha256::new();
    for (name, t) in all_variables(stores) {
        let t = t.to_device(Device::Cpu).contiguous();
        let mut bytes = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut bytes, t.numel());
        h.update(name.as_bytes());
        h.update(&bytes);
    }
    vqtok_core::hash::hex(&h.finalize())
}

/// Fails unless every rank reported the same digest.
pub fn check_same_weights(digests: &[String], step: u64) -> Result<(), TrainError> {
    if digests.iter().all(|d| d == &digests[0]) {
        return Ok(());
    }
    Err(TrainError::RanksDiverged {
        step,
        digests: digests.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_positions_round_trip_and_need_the_same_world_size() {
        let state = |p| DataState::Synthetic { position: p };
        let one = saved_data(vec![state(3)]);
        assert_eq!(one, serde_json::json!({"kind": "synthetic", "position": 3}));
        assert!(matches!(
            rank_data(&one, 0, 1),
            Ok(DataState::Synthetic { position: 3 })
        ));
        let two = saved_data(vec![state(5), state(6)]);
        assert!(matches!(
            rank_data(&two, 1, 2),
            Ok(DataState::Synthetic { position: 6 })
        ));
        let err = rank_data(&two, 0, 1).unwrap_err();
        assert!(err.contains("2 rank(s)"), "{err}");
        assert!(rank_data(&one, 0, 2).unwrap_err().contains("1 rank(s)"));
    }
}
