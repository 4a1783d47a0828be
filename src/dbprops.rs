//! What a plain dump without `--create` does not carry, captured at backup time and applied by
//! restore: the database's own settings (`ALTER DATABASE ... SET`), role-in-database settings,
//! its comment, its encoding and locale; and each extension's schema and version, so that an
//! extension the dump does not create itself is made in the right schema before the restore.

use serde::Deserialize;

use crate::postgres::{quote_ident, quote_literal, PgError, Psql};

pub use crate::catalog::{DatabaseProperties, ExtensionInfo, RoleSetting};

/// What one query before the dump finds out about the database.
#[derive(Debug, Clone, Default)]
pub struct DatabaseInfo {
    /// `server_version`.
    pub server_version: String,
    /// Size on disk.
    pub size: Option<u64>,
    /// Installed extensions.
    pub extensions: Vec<ExtensionInfo>,
    /// Settings, comment, encoding and locale.
    pub properties: Option<DatabaseProperties>,
}

const INFO_SQL: &str = r#"
SELECT json_build_object(
  'server_version', current_setting('server_version'),
  'size', pg_database_size(d.oid),
  'extensions', (SELECT coalesce(json_agg(json_build_object('name', e.extname, 'schema', n.nspname,
                   'version', e.extversion) ORDER BY e.extname), '[]')
                 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace),
  'settings', (SELECT coalesce(json_agg(c), '[]')
               FROM pg_db_role_setting s, unnest(s.setconfig) c
               WHERE s.setdatabase = d.oid AND s.setrole = 0),
  'role_settings', (SELECT coalesce(json_agg(json_build_object('role', r.rolname, 'setting', c)
                      ORDER BY r.rolname), '[]')
                    FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole,
                         unnest(s.setconfig) c
                    WHERE s.setdatabase = d.oid),
  'comment', shobj_description(d.oid, 'pg_database'),
  'encoding', pg_encoding_to_char(d.encoding),
  'collate', d.datcollate,
  'ctype', d.datctype,
  'locale_provider', to_jsonb(d) ->> 'datlocprovider',
  'icu_locale', coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale'))
FROM pg_database d WHERE d.datname = current_database()
"#;

#[derive(Debug, Deserialize)]
struct Raw {
    server_version: String,
    size: Option<u64>,
    extensions: Vec<ExtensionInfo>,
    settings: Vec<String>,
    role_settings: Vec<RoleSetting>,
    comment: Option<String>,
    encoding: String,
    collate: String,
    ctype: String,
    locale_provider: Option<String>,
    icu_locale: Option<String>,
}

/// Ask the server (one query, just before the dump). A server too old for the query gives
/// only its version and size.
pub fn capture(psql: &Psql) -> Result<DatabaseInfo, PgError> {
    match psql.query(INFO_SQL) {
        Ok(rows) => {
            let text = rows
                .first()
                .and_then(|r| r.first())
                .cloned()
                .unwrap_or_default();
            match serde_json::from_str::<Raw>(&text) {
                Ok(r) => Ok(DatabaseInfo {
                    server_version: r
                        .server_version
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                    size: r.size,
                    extensions: r.extensions,
                    properties: Some(DatabaseProperties {
                        settings: r.settings,
                        role_settings: r.role_settings,
                        comment: r.comment,
                        encoding: r.encoding,
                        collate: r.collate,
                        ctype: r.ctype,
                        locale_provider: match r.locale_provider.as_deref() {
                            Some("c") => Some("libc".into()),
                            Some("i") => Some("icu".into()),
                            Some("b") => Some("builtin".into()),
                            _ => None,
                        },
                        icu_locale: r.icu_locale,
                    }),
                }),
                Err(_) => fallback(psql),
            }
        }
        Err(e @ PgError::Connect { .. }) => Err(e),
        Err(_) => fallback(psql),
    }
}

fn fallback(psql: &Psql) -> Result<DatabaseInfo, PgError> {
    let (server_version, size) = psql.server_info()?;
    crate::log::warn(
        "the server is too old to report database settings and extensions: they are not in the manifest",
    );
    Ok(DatabaseInfo {
        server_version,
        size,
        ..Default::default()
    })
}

/// Settings whose values are lists that `ALTER ... SET` takes as separate literals (as
/// pg_dumpall writes them).
const LIST_SETTINGS: &[&str] = &[
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
    "shared_preload_libraries",
    "unix_socket_directories",
    "default_text_search_config_list",
];

/// `name TO value` of an `ALTER ... SET` for a `name=value` setting.
pub fn set_clause(setting: &str) -> Option<String> {
    let (name, value) = setting.split_once('=')?;
    let ok_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if !ok_name {
        return None;
    }
    if LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        let parts = split_list(value);
        if parts.is_empty() {
            return Some(format!("{name} TO ''"));
        }
        let items: Vec<String> = parts.iter().map(|p| quote_literal(p)).collect();
        return Some(format!("{name} TO {}", items.join(", ")));
    }
    Some(format!("{name} TO {}", quote_literal(value)))
}

/// Split a list setting as the server's SplitGUCList does: at commas outside double quotes,
/// blanks trimmed, double-quoted elements unquoted (`""` is `"`).
fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out.retain(|s| !s.is_empty());
    out
}

impl DatabaseProperties {
    /// `CREATE DATABASE` for `name` with the same encoding and locale (from template0, as a
    /// dump should be restored).
    pub fn create_sql(&self, name: &str) -> String {
        let mut sql = format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(name));
        if !self.encoding.is_empty() {
            sql.push_str(&format!(" ENCODING {}", quote_literal(&self.encoding)));
        }
        if !self.collate.is_empty() {
            sql.push_str(&format!(" LC_COLLATE {}", quote_literal(&self.collate)));
        }
        if !self.ctype.is_empty() {
            sql.push_str(&format!(" LC_CTYPE {}", quote_literal(&self.ctype)));
        }
        match (self.locale_provider.as_deref(), &self.icu_locale) {
            (Some("icu"), Some(l)) => sql.push_str(&format!(
                " LOCALE_PROVIDER icu ICU_LOCALE {}",
                quote_literal(l)
            )),
            (Some(p @ "builtin"), Some(l)) => sql.push_str(&format!(
                " LOCALE_PROVIDER {p} BUILTIN_LOCALE {}",
                quote_literal(l)
            )),
            _ => {}
        }
        sql
    }

    /// The statements that give `name` its settings and comment (run after the restore, so a
    /// setting like `default_transaction_read_only` cannot get in its way). With
    /// `with_roles`, also the role-in-database settings.
    pub fn apply_sql(&self, name: &str, with_roles: bool) -> Vec<String> {
        let db = quote_ident(name);
        let mut out: Vec<String> = self
            .settings
            .iter()
            .filter_map(|s| set_clause(s))
            .map(|c| format!("ALTER DATABASE {db} SET {c}"))
            .collect();
        if with_roles {
            out.extend(self.role_settings.iter().filter_map(|r| {
                set_clause(&r.setting).map(|c| {
                    format!(
                        "ALTER ROLE {} IN DATABASE {db} SET {c}",
                        quote_ident(&r.role)
                    )
                })
            }));
        }
        if let Some(c) = &self.comment {
            out.push(format!("COMMENT ON DATABASE {db} IS {}", quote_literal(c)));
        }
        out
    }

    /// For the restore plan: what will be applied, in words.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.settings.is_empty() {
            out.push(format!("database settings: {}", self.settings.join("; ")));
        }
        for r in &self.role_settings {
            out.push(format!("setting of role {} in it: {}", r.role, r.setting));
        }
        if let Some(c) = &self.comment {
            let first = c.lines().next().unwrap_or_default();
            out.push(format!("comment: {}", crate::text::escape_control(first)));
        }
        out
    }
}

/// The configured extensions a restore must create before the dump runs: those the dump does
/// not create itself, in the schema the manifest recorded (made if missing, unless the dump
/// creates that schema: then it cannot be made first, and a warning says so).
pub fn extensions_to_create(
    configured: &[String],
    recorded: &[ExtensionInfo],
    dump_extensions: &[String],
    dump_schemas: &[String],
) -> Vec<(String, Option<String>)> {
    configured
        .iter()
        .filter(|e| !dump_extensions.iter().any(|d| d == *e))
        .filter_map(|e| {
            let schema = recorded
                .iter()
                .find(|r| &r.name == e)
                .map(|r| r.schema.clone());
            match &schema {
                Some(s) if dump_schemas.contains(s) => {
                    crate::log::warn(&format!(
                        "extension {e} lives in schema {s}, which the dump creates, but the dump does not create the extension: it cannot be made before the restore; install it by hand afterwards"
                    ));
                    None
                }
                _ => Some((e.clone(), schema)),
            }
        })
        .collect()
}

/// The SQL that creates one extension in its schema.
pub fn create_extension_sql(name: &str, schema: Option<&str>) -> Vec<String> {
    match schema {
        Some(s) if s != "public" => vec![
            format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(s)),
            format!(
                "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}",
                quote_ident(name),
                quote_ident(s)
            ),
        ],
        Some(s) => vec![format!(
            "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}",
            quote_ident(name),
            quote_ident(s)
        )],
        None => vec![format!(
            "CREATE EXTENSION IF NOT EXISTS {}",
            quote_ident(name)
        )],
    }
}

/// `CREATE DATABASE` as the original was (encoding, locale, from template0); a server that lacks
/// the locale gets a plain one from template0, with a warning.
pub fn create_database(
    maint: &Psql,
    name: &str,
    props: Option<&crate::dbprops::DatabaseProperties>,
) -> crate::error::Result<()> {
    let plain = format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(name));
    let Some(p) = props else {
        maint.query(&plain)?;
        return Ok(());
    };
    match maint.query(&p.create_sql(name)) {
        Ok(_) => Ok(()),
        Err(e @ crate::postgres::PgError::Connect { .. }) => Err(e.into()),
        Err(e) => {
            crate::log::warn(&format!(
                "cannot create {name} with the original's encoding and locale ({e}); creating it with this server's defaults"
            ));
            maint.query(&plain)?;
            Ok(())
        }
    }
}

/// The database's own settings and comment (an error when they cannot be applied: an app may
/// depend on them), then role-in-database settings (a warning for a role that is not there).
pub fn apply_properties(
    maint: &Psql,
    name: &str,
    p: &crate::dbprops::DatabaseProperties,
) -> crate::error::Result<()> {
    for sql in p.apply_sql(name, false) {
        maint.query(&sql).map_err(|e| {
            crate::error::Error::Restore(crate::postgres::RestoreError::Sql {
                db: name.to_string(),
                detail: format!(
                    "the data is restored, but a database setting could not be applied: {e} (statement: {sql}); apply it by hand"
                ),
                privilege: false,
                line: None,
            })
        })?;
    }
    let with_roles = p.apply_sql(name, true);
    for sql in with_roles.iter().filter(|s| s.starts_with("ALTER ROLE ")) {
        if let Err(e) = maint.query(sql) {
            crate::log::warn(&format!("role setting not applied: {e} ({sql})"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_alter_statements_like_pg_dumpall_writes() {
        assert_eq!(
            set_clause("search_path=\"$user\", public, extensions").unwrap(),
            "search_path TO '$user', 'public', 'extensions'"
        );
        assert_eq!(set_clause("work_mem=8MB").unwrap(), "work_mem TO '8MB'");
        assert_eq!(
            set_clause("app.note=it's; DROP").unwrap(),
            "app.note TO 'it''s; DROP'"
        );
        assert!(set_clause("bad name=x").is_none());
        let p = DatabaseProperties {
            settings: vec!["search_path=public, extensions".into()],
            role_settings: vec![RoleSetting {
                role: "rw \"reader\"".into(),
                setting: "work_mem=8MB".into(),
            }],
            comment: Some("the app's database".into()),
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "C.UTF-8".into(),
            locale_provider: Some("libc".into()),
            icu_locale: None,
        };
        assert_eq!(
            p.apply_sql("we\"ird", true),
            vec![
                "ALTER DATABASE \"we\"\"ird\" SET search_path TO 'public', 'extensions'",
                "ALTER ROLE \"rw \"\"reader\"\"\" IN DATABASE \"we\"\"ird\" SET work_mem TO '8MB'",
                "COMMENT ON DATABASE \"we\"\"ird\" IS 'the app''s database'",
            ]
        );
        assert_eq!(
            p.create_sql("x"),
            "CREATE DATABASE \"x\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
        );
    }

    #[test]
    fn only_extensions_the_dump_does_not_create_are_made_first() {
        let recorded = vec![
            ExtensionInfo {
                name: "citext".into(),
                schema: "extensions".into(),
                version: "1.6".into(),
            },
            ExtensionInfo {
                name: "hstore".into(),
                schema: "public".into(),
                version: "1.8".into(),
            },
        ];
        let configured = vec!["citext".to_string(), "hstore".to_string()];
        // A whole-database dump creates both: nothing to do first.
        assert!(
            extensions_to_create(&configured, &recorded, &configured, &["extensions".into()])
                .is_empty()
        );
        // A dump of one schema (-n app) creates neither: both in their recorded schemas.
        assert_eq!(
            extensions_to_create(&configured, &recorded, &[], &["app".into()]),
            vec![
                ("citext".to_string(), Some("extensions".to_string())),
                ("hstore".to_string(), Some("public".to_string()))
            ]
        );
        assert_eq!(
            create_extension_sql("citext", Some("extensions")),
            vec![
                "CREATE SCHEMA IF NOT EXISTS \"extensions\"",
                "CREATE EXTENSION IF NOT EXISTS \"citext\" WITH SCHEMA \"extensions\""
            ]
        );
    }
}
