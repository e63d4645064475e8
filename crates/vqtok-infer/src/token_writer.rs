//! Writes a token file while its video is still being encoded, so memory stays flat
//! however long the video: each level's indices go to a hidden spill file as they come
//! (at the file's int16/int32 width), and `finish` writes header + spills into a hidden
//! sibling of the output, syncs it and renames it into place. What stays in memory is the
//! slot list (8 bytes per frame), which the header needs.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use vqtok_core::fs::{create_partial, write_atomic_with};

use crate::error::{InferError, Result};
use crate::tokens::IndexDtype;
use crate::tokens::{LevelGrid, TokenMeta, create_parent, encode_indices, header};

/// One level's spill.
struct Spill {
    grid: LevelGrid,
    path: PathBuf,
    file: BufWriter<File>,
}

/// A token file being written (see the module docs).
pub struct TokenWriter {
    path: PathBuf,
    dtype: IndexDtype,
    levels: Vec<Spill>,
    frames: usize,
}

impl TokenWriter {
    /// Starts `path` for grids `levels` (their height/width; frames are counted).
    pub fn create(path: &Path, levels: Vec<LevelGrid>, dtype: IndexDtype) -> Result<TokenWriter> {
        create_parent(path)?;
        let mut spills = Vec::with_capacity(levels.len());
        for (k, grid) in levels.into_iter().enumerate() {
            // Locked while open: a concurrent run cleaning this output's leftovers keeps it.
            let (spill, file) =
                create_partial(path, &format!(".L{k}")).map_err(|e| InferError::io(path, e))?;
            spills.push(Spill {
                grid,
                path: spill,
                file: BufWriter::new(file),
            });
        }
        Ok(TokenWriter {
            path: path.to_path_buf(),
            dtype,
            levels: spills,
            frames: 0,
        })
    }

    /// Appends `n` frames: `grids[k]` holds level k's `[n, h, w]` indices, each checked
    /// against its codebook.
    pub fn push(&mut self, n: usize, grids: &[&[i64]]) -> Result<()> {
        if grids.len() != self.levels.len() {
            return Err(InferError::Internal(format!(
                "{} index grids for {} levels",
                grids.len(),
                self.levels.len()
            )));
        }
        for (spill, grid) in self.levels.iter_mut().zip(grids) {
            let g = &spill.grid;
            if grid.len() != n * g.height * g.width {
                return Err(InferError::Internal(format!(
                    "`{}`: {} indices for {n} frames of {}×{}",
                    g.tensor,
                    grid.len(),
                    g.height,
                    g.width
                )));
            }
            if let Some(v) = crate::tokens::outside_codebook(grid, g.codebook_size) {
                return Err(InferError::Internal(format!(
                    "`{}`: index {v} outside the codebook of {}",
                    g.tensor, g.codebook_size
                )));
            }
            let narrow: Vec<i32> = grid.iter().map(|&v| v as i32).collect();
            spill
                .file
                .write_all(&encode_indices(&narrow, self.dtype))
                .map_err(|e| InferError::io(&spill.path, e))?;
        }
        self.frames += n;
        Ok(())
    }

    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Writes the file with `meta` (whose `frame_indices` must count the pushed frames),
    /// then removes the spills. Dropping the writer instead leaves no output (the spills
    /// are removed).
    pub fn finish(mut self, meta: &TokenMeta) -> Result<()> {
        if meta.frames() != self.frames || meta.index_dtype != self.dtype {
            return Err(InferError::Internal(format!(
                "metadata for {} frames, {} written",
                meta.frames(),
                self.frames
            )));
        }
        let shapes: Vec<(String, [usize; 3])> = self
            .levels
            .iter()
            .map(|s| {
                (
                    s.grid.tensor.clone(),
                    [self.frames, s.grid.height, s.grid.width],
                )
            })
            .collect();
        let levels = &mut self.levels;
        write_atomic_with(&self.path, |out| {
            out.write_all(&header(meta, &shapes))?;
            for spill in levels.iter_mut() {
                spill.file.flush()?;
                std::io::copy(&mut File::open(&spill.path)?, out)?;
            }
            Ok(())
        })
        .map_err(|e| InferError::io(&self.path, e))
    }
}

impl Drop for TokenWriter {
    fn drop(&mut self) {
        for spill in &self.levels {
            let _ = std::fs::remove_file(&spill.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TokenFile;
    use crate::tokens::tests::sample;

    /// A writer of `s.vqt.safetensors` in a fresh folder, and the sample file it is to
    /// write.
    fn sample_writer() -> (tempfile::TempDir, PathBuf, TokenFile, TokenWriter) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.vqt.safetensors");
        let file = sample(IndexDtype::I16, 512);
        let w = TokenWriter::create(&path, file.meta.levels.clone(), IndexDtype::I16).unwrap();
        (dir, path, file, w)
    }

    #[test]
    fn streamed_file_equals_the_in_memory_one_byte_for_byte() {
        let (dir, path, file, mut w) = sample_writer();
        // Frames 0-1, then frame 2: batches of any size concatenate.
        for (start, n) in [(0, 2), (2, 1)] {
            let grids: Vec<Vec<i64>> = file
                .levels
                .iter()
                .map(|l| l.frames(start, n).iter().map(|&v| v as i64).collect())
                .collect();
            let refs: Vec<&[i64]> = grids.iter().map(Vec::as_slice).collect();
            w.push(n, &refs).unwrap();
        }
        w.finish(&file.meta).unwrap();
        assert!(std::fs::read(&path).unwrap() == file.to_bytes());
        assert_eq!(TokenFile::open(&path).unwrap(), file);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "spills are removed");
    }

    #[test]
    fn out_of_range_indices_and_abandoned_writers_leave_nothing() {
        let (dir, _, _, mut w) = sample_writer();
        let top = vec![511i64; 16];
        let mut bottom = vec![0i64; 64];
        bottom[7] = 512;
        let e = w.push(1, &[&top, &bottom]).unwrap_err().to_string();
        assert!(e.contains("index 512") && e.contains("indices_b"), "{e}");
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
