//! Export files written whole: rows go to `FILE.partial`, which takes the
//! place of `FILE` only once complete and on disk. A reader of `FILE` (a
//! script, Kea's tools, sqlite3) never sees half an export, and a crash
//! leaves the previous one.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use super::{sqlite, text_sink, ExportFormat, LeaseRow, RowSink};
use crate::store::Names;

/// The file `path` is written as first.
fn partial(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// A sink into an export file; [`RowSink::finish`] puts the file in place.
pub struct ExportFile {
    temp: PathBuf,
    path: PathBuf,
    inner: Option<Box<dyn RowSink>>,
}

impl ExportFile {
    /// Starts `path` in `format` (`names`: the config's scopes, for Kea's subnet ids).
    pub fn create(format: ExportFormat, path: &Path, names: &Names) -> io::Result<ExportFile> {
        let temp = partial(path);
        let inner: Box<dyn RowSink> = match format {
            ExportFormat::Sqlite => {
                let _ = std::fs::remove_file(&temp);
                Box::new(sqlite::Sink::create(&temp)?)
            }
            text => text_sink(text, BufWriter::with_capacity(1 << 20, File::create(&temp)?), names),
        };
        Ok(ExportFile { temp, path: path.to_path_buf(), inner: Some(inner) })
    }
}

impl RowSink for ExportFile {
    fn row(&mut self, row: &LeaseRow) -> io::Result<()> {
        self.inner.as_mut().expect("not finished").row(row)
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.inner.take().expect("finished once").finish()?;
        File::open(&self.temp)?.sync_all()?;
        std::fs::rename(&self.temp, &self.path)?;
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    }
}

impl Drop for ExportFile {
    /// An export that did not complete leaves no partial file behind.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}
