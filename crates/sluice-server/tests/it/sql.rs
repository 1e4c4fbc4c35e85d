//! Direct SQL on a test's database, behind the server's back: for breaking things on purpose.

use crate::harness::{Backend, Db};

fn backend_of(db: &Db) -> Backend {
    if db.url.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    }
}

/// Runs each statement, in order, on its own connection to the test's database (the same
/// file or PostgreSQL schema the server uses).
pub async fn exec(db: &Db, statements: &[&str]) {
    match backend_of(db) {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url)
                .await
                .expect("open the SQLite file");
            for s in statements {
                sqlx::query(s)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url)
                .await
                .expect("connect to the test schema");
            for s in statements {
                sqlx::raw_sql(s)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            pool.close().await;
        }
    }
}

/// Makes every insert into the audit trail fail, as a full disk or a broken audit store would.
pub async fn break_audit(db: &Db) {
    match backend_of(db) {
        Backend::Sqlite => {
            exec(
                db,
                &["CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries \
                   BEGIN SELECT RAISE(ABORT, 'audit down'); END"],
            )
            .await
        }
        Backend::Postgres => {
            exec(
                db,
                &[
                    "CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION 'audit down'; END $$",
                    "CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries \
                     FOR EACH ROW EXECUTE FUNCTION audit_down()",
                ],
            )
            .await
        }
    }
}

/// Undoes [`break_audit`].
pub async fn repair_audit(db: &Db) {
    match backend_of(db) {
        Backend::Sqlite => exec(db, &["DROP TRIGGER audit_down"]).await,
        Backend::Postgres => {
            exec(
                db,
                &[
                    "DROP TRIGGER audit_down ON audit_entries",
                    "DROP FUNCTION audit_down()",
                ],
            )
            .await
        }
    }
}
