//! The catalogue every PostgreSQL session sees, prepared once per listener:
//! the history tables and registry views, `pg_catalog` (whose static tables
//! are decoded from embedded Arrow files, several megabytes) and the
//! functions clients call.
//!
//! Each authenticated connection gets its own `SessionContext` (its own
//! settings, so one session's `SET` never reaches another) cloned from this
//! template: the catalogue and the function registry are shared, not
//! rebuilt. Building `pg_catalog` per connection cost ~5 MB each, before
//! authentication, and `datafusion-pg-catalog`'s schema provider holds the
//! catalogue list that holds it, so that memory was never freed.

use std::sync::Arc;

use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use super::{PgError, SERVER_VERSION, SERVER_VERSION_NUM};
use crate::sql::{self, SqlEngine};

/// The shared catalogue and functions (see the module docs).
pub struct PgCatalog {
    template: SessionState,
    /// `datafusion-postgres`'s PostgreSQL-dialect parser and rewrites
    /// (building one tokenizes its substitution list).
    parser: Arc<PostgresCompatibilityParser>,
}

impl PgCatalog {
    pub fn new(engine: &SqlEngine) -> Result<Self, PgError> {
        let ctx = engine
            .session()
            .map_err(|e| PgError::Catalog(e.to_string()))?;
        setup_pg_catalog(&ctx, sql::CATALOG, EmptyContextProvider)
            .map_err(|e| PgError::Catalog(e.to_string()))?;
        ctx.register_udf(ScalarUDF::new_from_impl(CurrentSetting::new()));
        Ok(Self {
            template: ctx.state(),
            parser: Arc::new(PostgresCompatibilityParser::new()),
        })
    }

    pub fn parser(&self) -> Arc<PostgresCompatibilityParser> {
        self.parser.clone()
    }

    /// A context of its own for one session, over the shared catalogue.
    pub fn session(&self) -> SessionContext {
        let state = SessionStateBuilder::new_from_existing(self.template.clone())
            .with_session_id(format!("pg-{:032x}", rand::random::<u128>()))
            .build();
        SessionContext::new_with_state(state)
    }
}

/// `current_setting(name [, missing_ok])` for the settings clients read
/// (Grafana: `server_version_num`, `search_path`); unknown names are an
/// error like PostgreSQL's, or NULL with `missing_ok`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl CurrentSetting {
    fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Exact(vec![DataType::Utf8]),
                    datafusion::logical_expr::TypeSignature::Exact(vec![
                        DataType::Utf8,
                        DataType::Boolean,
                    ]),
                ],
                Volatility::Stable,
            ),
        }
    }

    fn value(name: &str) -> Option<&'static str> {
        Some(match name.to_ascii_lowercase().as_str() {
            "server_version" => SERVER_VERSION,
            "server_version_num" => SERVER_VERSION_NUM,
            "search_path" => "public",
            "timezone" => "UTC",
            "datestyle" => "ISO, MDY",
            "intervalstyle" => "postgres",
            "client_encoding" | "server_encoding" => "UTF8",
            "standard_conforming_strings" | "integer_datetimes" => "on",
            "default_transaction_read_only" | "transaction_read_only" => "on",
            "is_superuser" => "off",
            "max_identifier_length" => "63",
            "transaction_isolation" => "read committed",
            _ => return None,
        })
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let missing_ok = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(b))) => b.unwrap_or(false),
            Some(_) => {
                return datafusion::common::plan_err!(
                    "current_setting's second argument must be a constant true or false"
                );
            }
            None => false,
        };
        let lookup = |name: Option<&str>| -> datafusion::error::Result<Option<String>> {
            let Some(name) = name else { return Ok(None) };
            match Self::value(name) {
                Some(v) => Ok(Some(v.to_owned())),
                None if missing_ok => Ok(None),
                None => {
                    datafusion::common::plan_err!("unrecognized configuration parameter \"{name}\"")
                }
            }
        };
        match &args.args[0] {
            ColumnarValue::Scalar(s) => {
                let name = match s {
                    ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                        v.as_deref()
                    }
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(lookup(name)?)))
            }
            ColumnarValue::Array(a) => {
                let names = datafusion::common::cast::as_string_array(a)?;
                let mut out = StringBuilder::new();
                for name in names.iter() {
                    out.append_option(lookup(name)?);
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_setting_knows_what_clients_ask_and_refuses_the_rest() {
        assert_eq!(
            CurrentSetting::value("server_version_num"),
            Some(SERVER_VERSION_NUM)
        );
        assert_eq!(CurrentSetting::value("SEARCH_PATH"), Some("public"));
        assert_eq!(CurrentSetting::value("no_such_setting"), None);
    }
}
