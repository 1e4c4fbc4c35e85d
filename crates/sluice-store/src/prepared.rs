//! PostgreSQL: the write batch's most frequent statements, prepared once on its connection.
//!
//! A batch sends its writers' statements with their parameters written in as literals,
//! several in one simple-protocol call (`tx::inline`), and PostgreSQL parses, analyses and
//! plans every one of them on every call. For the small statements of a request, an approval
//! and a commit, planning cost the batch's server process as much as executing them, and that
//! process is the one every write of the instance passes through (BENCHMARKS.md, "Statements
//! prepared on the batch's connection"). So these are prepared on the batch's connection
//! before its first batch ([`prepare_all`]; a rollback does not undo `PREPARE`) and sent as
//! `EXECUTE name(literal, …)`: one statement for one, so the batch counts them as before,
//! with the same effect, planned once (a generic plan after PostgreSQL's first five).
//!
//! A statement not listed here is written in whole, as before. [`Arg`], a statement's
//! parameter, lives here too, with how it is written as a literal.

/// A bind parameter of a statement: written in as a literal on PostgreSQL ([`push_arg`],
/// `tx::inline`), bound on SQLite.
#[derive(Clone)]
pub(crate) enum Arg {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
}

/// Appends `a` as an SQL literal: an integer (a negative one in parentheses, so that `-$1`
/// never becomes a `--` comment), text between single quotes with every quote doubled
/// (connections run with `standard_conforming_strings = on`), `NULL` for none.
pub(crate) fn push_arg(out: &mut String, a: &Arg) {
    use std::fmt::Write as _;
    match a {
        Arg::Int(v) | Arg::OptInt(Some(v)) if *v < 0 => {
            let _ = write!(out, "({v})");
        }
        Arg::Int(v) | Arg::OptInt(Some(v)) => {
            let _ = write!(out, "{v}");
        }
        Arg::Text(t) | Arg::OptText(Some(t)) => crate::push_literal(out, t),
        Arg::OptInt(None) | Arg::OptText(None) => out.push_str("NULL"),
    }
}

/// A statement and the name it is prepared under.
#[derive(Clone, Copy)]
pub(crate) struct Prepared {
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

impl Prepared {
    /// Appends `EXECUTE name(args…)`, the arguments written in as literals.
    pub(crate) fn execute(&self, args: &[Arg], out: &mut String) {
        out.push_str("EXECUTE ");
        out.push_str(self.name);
        if args.is_empty() {
            return;
        }
        out.push('(');
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            push_arg(out, a);
        }
        out.push(')');
    }

    /// [`execute`](Self::execute) as a statement of its own.
    pub(crate) fn with(&self, args: &[Arg]) -> String {
        let mut sql = String::new();
        self.execute(args, &mut sql);
        sql
    }
}

pub(crate) const INSERT_REQUEST: Prepared = Prepared {
    name: "sluice_insert_request",
    sql: "INSERT INTO requests (id, requester, entitlement, status, needs_review, created_at, pending_until, expires_at, body) \
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
};

pub(crate) const UPDATE_REQUEST: Prepared = Prepared {
    name: "sluice_update_request",
    sql: "UPDATE requests SET status = $1, needs_review = $2, expires_at = $3, body = $4 WHERE id = $5",
};

/// The vote recorded only if the request is still stored as seen (see
/// `WriteTx::vote_on_seen`).
pub(crate) const INSERT_VOTE_ON_SEEN: Prepared = Prepared {
    name: "sluice_vote_on_seen",
    sql: "INSERT INTO votes (request_id, approver, approve, at) \
          VALUES ((SELECT id FROM requests WHERE id = $1 AND body = $2 FOR UPDATE), $3, $4, $5)",
};

/// One audit entry.
pub(crate) const INSERT_ENTRY: Prepared = Prepared {
    name: "sluice_insert_entry",
    sql: "INSERT INTO audit_entries (seq, at, actor, action, resource, subject_id, details, prev_hash, hash, format) \
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
};

/// Takes the chain head's lock without reading it (see `Batch::locked`).
pub(crate) const LOCK_HEAD: Prepared = Prepared {
    name: "sluice_lock_head",
    sql: "UPDATE audit_head SET seq = seq WHERE id = 1",
};

/// An error unless the chain head is `$1`, `$2`: see `batch::expect_head_sql`.
pub(crate) const EXPECT_HEAD: Prepared = Prepared {
    name: "sluice_expect_head",
    sql: "INSERT INTO audit_head (id, seq, hash) SELECT 1, 0, '' \
          WHERE NOT EXISTS (SELECT 1 FROM audit_head WHERE id = 1 AND seq = $1 AND hash = $2)",
};

/// The chain head, locked.
pub(crate) const READ_HEAD: Prepared = Prepared {
    name: "sluice_read_head",
    sql: "UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash",
};

pub(crate) const READ_ACCESS_REV: Prepared = Prepared {
    name: "sluice_read_access_rev",
    sql: "SELECT access_rev FROM sluice_state WHERE id = 1",
};

/// [`READ_HEAD`] and [`READ_ACCESS_REV`]: the first call of a commit that does not know them
/// (`batch::HEAD_SQL`).
pub(crate) const READ_HEAD_AND_ACCESS_REV: &str =
    "EXECUTE sluice_read_head; EXECUTE sluice_read_access_rev";

/// The head's checkpoint, stored only while the newest checkpoint has its key (`$4`): see
/// `batch::sign_in_commit_sql`.
pub(crate) const SIGN_HEAD: Prepared = Prepared {
    name: "sluice_sign_head",
    sql: "INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) \
          SELECT $1, $2, $3, $4, $5 \
          WHERE COALESCE((SELECT key_id FROM audit_checkpoints ORDER BY seq DESC LIMIT 1), $4) = $4 \
          ON CONFLICT (seq) DO NOTHING RETURNING seq AS signed_seq",
};

pub(crate) const ACCESS_REV: Prepared = Prepared {
    name: "sluice_access_rev",
    sql: "UPDATE sluice_state SET access_rev = $1 WHERE id = 1",
};

pub(crate) const ACCESS_AND_FLAGS_REV: Prepared = Prepared {
    name: "sluice_access_and_flags_rev",
    sql: "UPDATE sluice_state SET access_rev = $1, flags_rev = flags_rev + 1 WHERE id = 1",
};

/// The chain-head update that ends every audited transaction on PostgreSQL, with the
/// notification of the commit in the same statement (no extra round trip; see
/// `crate::listen`). `$3` is the payload.
pub(crate) const HEAD_NOTIFY: Prepared = Prepared {
    name: "sluice_head",
    sql: "UPDATE audit_head SET seq = $1, hash = $2 \
          FROM (SELECT pg_notify('sluice_' || left(md5(current_schema()), 16), $3)) AS n WHERE id = 1",
};

/// Every prepared statement. Names are the store's own (`sluice_`), apart from sqlx's.
pub(crate) const ALL: &[Prepared] = &[
    INSERT_REQUEST,
    UPDATE_REQUEST,
    INSERT_VOTE_ON_SEEN,
    INSERT_ENTRY,
    LOCK_HEAD,
    EXPECT_HEAD,
    READ_HEAD,
    READ_ACCESS_REV,
    SIGN_HEAD,
    ACCESS_REV,
    ACCESS_AND_FLAGS_REV,
    HEAD_NOTIFY,
];

/// The prepared statement whose text is `sql`, if it is one of [`ALL`].
pub(crate) fn find(sql: &str) -> Option<Prepared> {
    ALL.iter().find(|p| p.sql == sql).copied()
}

/// One call that prepares [`ALL`] (on a connection that has none of them).
pub(crate) fn prepare_all() -> String {
    let mut sql = String::new();
    for p in ALL {
        if !sql.is_empty() {
            sql.push_str("; ");
        }
        sql.push_str("PREPARE ");
        sql.push_str(p.name);
        sql.push_str(" AS ");
        sql.push_str(p.sql);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::{find, prepare_all, Arg, Prepared, ALL, READ_ACCESS_REV, READ_HEAD};

    #[test]
    fn every_statement_is_found_by_its_text_and_named_once() {
        for p in ALL {
            assert_eq!(find(p.sql).map(|f| f.name), Some(p.name));
            assert!(p.name.starts_with("sluice_"));
            assert_eq!(ALL.iter().filter(|q| q.name == p.name).count(), 1);
            assert!(!p.sql.contains(';'), "{} is one statement", p.name);
        }
        assert!(find("SELECT 1").is_none());
        assert_eq!(prepare_all().matches("PREPARE ").count(), ALL.len());
    }

    #[test]
    fn the_commit_reads_the_head_through_its_prepared_statements() {
        assert_eq!(
            super::READ_HEAD_AND_ACCESS_REV,
            format!(
                "EXECUTE {}; EXECUTE {}",
                READ_HEAD.name, READ_ACCESS_REV.name
            )
        );
    }

    #[test]
    fn arguments_are_written_as_literals() {
        let p = Prepared {
            name: "sluice_x",
            sql: "",
        };
        let mut out = String::new();
        p.execute(
            &[
                Arg::Int(-5),
                Arg::Text("it's '; DROP TABLE t; --".into()),
                Arg::OptText(None),
                Arg::OptInt(Some(7)),
            ],
            &mut out,
        );
        assert_eq!(
            out,
            "EXECUTE sluice_x((-5), 'it''s ''; DROP TABLE t; --', NULL, 7)"
        );
        let mut out = String::new();
        p.execute(&[], &mut out);
        assert_eq!(out, "EXECUTE sluice_x");
    }
}
