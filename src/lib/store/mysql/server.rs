//! MySQL/MariaDB: what the store checks of the server it connects to (a version with `FOR UPDATE
//! SKIP LOCKED`) and the name of the master lock it takes there.

use sha2::{Digest, Sha256};

use super::super::StoreError;
use super::Result;

/// Longest user-level lock name the server accepts.
const LOCK_NAME_MAX: usize = 64;

/// Refuses servers without `FOR UPDATE SKIP LOCKED`: MariaDB before 10.6, MySQL before 8.0.
pub(super) fn check_server_version(version: &str) -> Result<()> {
    // Old MariaDB replication handshakes prefix a fake `5.5.5-`.
    let v = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    let (major, minor) = match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => {
            return Err(StoreError::Unsupported(format!(
                "cannot read the server version `{version}`"
            )))
        }
    };
    let (name, need) = if v.to_ascii_lowercase().contains("mariadb") {
        ("MariaDB", (10, 6))
    } else {
        ("MySQL", (8, 0))
    };
    if (major, minor) < need {
        return Err(StoreError::Unsupported(format!(
            "{name} {version} is too old: akkaflow needs {name} {}.{} or newer for FOR UPDATE SKIP LOCKED",
            need.0, need.1
        )));
    }
    Ok(())
}

/// Whether the server returns rows from an INSERT (`INSERT ... RETURNING`): MariaDB since 10.5,
/// never MySQL.
pub(super) fn insert_returns_rows(version: &str) -> bool {
    version.to_ascii_lowercase().contains("mariadb")
}

/// The master lock's name: GET_LOCK names are server-wide, so it carries the database name; a name
/// over the server's 64-character limit is shortened to a hash of it.
pub(super) fn lock_name(database: &str) -> String {
    let plain = format!("akkaflow.master.{database}");
    if plain.chars().count() <= LOCK_NAME_MAX {
        return plain;
    }
    let digest = Sha256::digest(database.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "akkaflow.master.{}",
        &hex[..LOCK_NAME_MAX - "akkaflow.master.".len()]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions() {
        let cases = [
            ("10.11.19-MariaDB-0+deb12u1", true),
            ("10.6.0-MariaDB", true),
            ("10.5.23-MariaDB-log", false),
            ("5.5.5-10.4.1-MariaDB", false),
            ("5.5.5-10.6.12-MariaDB", true),
            ("11.4.2-MariaDB", true),
            ("8.0.36", true),
            ("8.4.0-commercial", true),
            ("5.7.44-log", false),
            ("garbage", false),
        ];
        for (version, ok) in cases {
            assert_eq!(check_server_version(version).is_ok(), ok, "{version}");
        }
    }

    #[test]
    fn lock_names_fit_the_server_limit() {
        assert_eq!(lock_name("akkaflow"), "akkaflow.master.akkaflow");
        let long = lock_name(&"x".repeat(64));
        assert_eq!(long.len(), LOCK_NAME_MAX);
        assert!(long.starts_with("akkaflow.master."));
        assert_ne!(long, lock_name(&"y".repeat(64)));
    }
}
