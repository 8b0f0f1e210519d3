//! What the three backends share: how our enums and ids cross sqlx, and small helpers.
//!
//! States are stored as their `as_str` text; decoding an unknown value is an error naming it, never a
//! default.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::state::{AttemptOutcome, InstanceId, InstanceStatus, TaskId, TaskStatus, TriggerKind};

use super::{LogStream, TokenRole};

macro_rules! text_column {
    ($($t:ty),+) => { $(
        impl<DB: Database> Type<DB> for $t
        where
            String: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $t
        where
            &'r str: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<DB>>::decode(value)?;
                text.parse::<$t>()
                    .map_err(|v| format!("unknown {} `{}`", stringify!($t), v).into())
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $t
        where
            &'q str: Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                <&str as Encode<DB>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    )+ };
}

text_column!(
    InstanceStatus,
    TaskStatus,
    TriggerKind,
    AttemptOutcome,
    LogStream,
    TokenRole
);

macro_rules! id_column {
    ($($t:ident),+) => { $(
        impl<DB: Database> Type<DB> for $t
        where
            i64: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <i64 as Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <i64 as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $t
        where
            i64: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok($t(<i64 as Decode<DB>>::decode(value)?))
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $t
        where
            i64: Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                <i64 as Encode<DB>>::encode_by_ref(&self.0, buf)
            }
        }
    )+ };
}

id_column!(InstanceId, TaskId);

/// A list bound as one JSON array value, so statement text stays the same whatever the length.
pub(crate) fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("a list of strings or numbers always serialises")
}

/// Task statuses as a JSON array of their spellings.
pub(crate) fn status_list(statuses: &[TaskStatus]) -> String {
    json_list(&statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

pub(crate) fn instance_status_list(statuses: &[InstanceStatus]) -> String {
    json_list(&statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

pub(crate) fn task_id_list(ids: &[TaskId]) -> String {
    json_list(&ids.iter().map(|i| i.0).collect::<Vec<_>>())
}

/// A scope prefix without its trailing slashes; `None` for the root (sees everything).
pub fn normalize_dir_prefix(prefix: Option<&str>) -> Option<String> {
    let p = prefix?.trim().trim_end_matches('/');
    (!p.is_empty()).then(|| p.to_string())
}

/// Whether `dir` lies at or below `prefix` (`/dw` covers `/dw` and `/dw/ods`, not `/dwh`).
pub fn dir_in_scope(dir: &str, prefix: Option<&str>) -> bool {
    match normalize_dir_prefix(prefix) {
        None => true,
        Some(p) => {
            let d = dir.trim_end_matches('/');
            d == p
                || d.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_scope_matches_whole_segments() {
        for (dir, prefix, want) in [
            ("/dw", Some("/dw"), true),
            ("/dw/ods", Some("/dw"), true),
            ("/dw/ods", Some("/dw/"), true),
            ("/dwh", Some("/dw"), false),
            ("/other", Some("/dw"), false),
            ("/anything", None, true),
            ("/anything", Some("/"), true),
            ("/dw", Some("/dw/ods"), false),
        ] {
            assert_eq!(dir_in_scope(dir, prefix), want, "{dir} in {prefix:?}");
        }
    }
}
