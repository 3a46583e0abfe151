//! The data directory holds every portal's OAuth tokens and every customer's messages: it is
//! created `0700`, and what is in it is made `0600` (directories `0700`) whatever the umask, at
//! every start. The process umask is narrowed to `077` too, so that files created later (sled's
//! new segments, snapshots) start private.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Mode of the data directory and of every directory in it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in the data directory.
pub const FILE_MODE: u32 = 0o600;

/// Create `path` (and missing parents) as a private directory, or make an existing one private;
/// then make everything inside it private, and narrow the process umask to `077`.
pub fn secure(path: &Path) -> io::Result<()> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    restrict(path)
}

/// `0700` for `dir` and the directories in it, `0600` for the files (symlinks are left alone).
fn restrict(dir: &Path) -> io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            restrict(&entry.path())?;
        } else if kind.is_file() {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_directory_and_everything_in_it_become_private_whatever_they_were() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("a/data");
        fs::create_dir_all(data.join("blobs")).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(data.join("db"), b"x").unwrap();
        fs::set_permissions(data.join("db"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(data.join("blobs/1"), b"x").unwrap();
        fs::set_permissions(data.join("blobs/1"), fs::Permissions::from_mode(0o666)).unwrap();
        secure(&data).unwrap();
        assert_eq!(mode(&data), DIR_MODE);
        assert_eq!(mode(&data.join("blobs")), DIR_MODE);
        assert_eq!(mode(&data.join("db")), FILE_MODE);
        assert_eq!(mode(&data.join("blobs/1")), FILE_MODE);
        // Files created afterwards start private (umask 077).
        fs::write(data.join("later"), b"x").unwrap();
        assert_eq!(mode(&data.join("later")) & 0o077, 0);
        let fresh = root.path().join("fresh");
        secure(&fresh).unwrap();
        assert_eq!(mode(&fresh), DIR_MODE);
    }
}
