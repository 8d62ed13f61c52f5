//! `GET /alerts`: the open alert episodes of the aircraft this instance owns, most severe
//! first; each with its rule, when and by which event it was raised, and the latest value of
//! the rule's model for the tail. `GET /tails/{tail}` shows one aircraft's
//! ([`crate::alerts::listing::open_of`]).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json;
use crate::alerts::listing::{OpenAlert, ranked, sort};
use crate::alerts::rule::{AlertRule, Severity};
use crate::app::AppContext;

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    /// Open episodes matching the filters, most severe first, then oldest first.
    pub open: Vec<OpenAlert>,
    /// Input partitions being restored from the changelog: their aircraft's episodes are not
    /// listed yet.
    pub restoring_partitions: Vec<i32>,
}

/// The filters of `GET /alerts`.
#[derive(Debug, Default)]
struct Filters {
    min_severity: Option<Severity>,
    rule: Option<String>,
}

impl Filters {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut filters = Filters::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "min_severity" => {
                    let severity = Severity::parse(&value).ok_or_else(|| {
                        ApiError::InvalidQuery(format!(
                            "min_severity=`{}`: one of info, warning, critical",
                            value.chars().take(40).collect::<String>()
                        ))
                    })?;
                    filters.min_severity = Some(severity);
                }
                "rule" => filters.rule = Some(value.into_owned()),
                other => {
                    return Err(ApiError::InvalidQuery(format!(
                        "unknown query parameter `{}`: min_severity and rule are known",
                        other.chars().take(40).collect::<String>()
                    )));
                }
            }
        }
        Ok(filters)
    }
}

#[utoipa::path(get, path = "/alerts", tag = "fleet",
    params(
        ("min_severity" = Option<String>, Query, description = "Only episodes at least this severe: `info`, `warning` or `critical`"),
        ("rule" = Option<String>, Query, description = "Only this rule's episodes"),
    ),
    responses(
        (status = 200, description = "Open alert episodes of the aircraft this instance owns", body = AlertList),
        (status = 400, description = "An unknown query parameter or severity (`invalid_query`)", body = ErrorBody),
    ))]
pub async fn alerts(
    State(ctx): State<Arc<AppContext>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let filters = Filters::parse(query.as_deref())?;
    let rules: Vec<AlertRule> = ctx
        .config
        .alerts
        .iter()
        .filter(|r| filters.rule.as_ref().is_none_or(|name| &r.name == name))
        .cloned()
        .collect();
    let mut open = Vec::new();
    ctx.store.for_each(|tail, entry| {
        if entry.alerts.is_empty() {
            return;
        }
        let matching = ranked(&rules, tail, entry)
            .into_iter()
            .filter(|(severity, _)| filters.min_severity.is_none_or(|min| *severity >= min));
        open.extend(matching);
    });
    sort(&mut open);
    Ok(json::ok(&AlertList {
        open: open.into_iter().map(|(_, a)| a).collect(),
        restoring_partitions: ctx.store.restoring(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_refuse_with_a_reason() {
        let f = Filters::parse(Some("min_severity=critical&rule=engine%2Dremaining-life")).unwrap();
        assert_eq!(f.min_severity, Some(Severity::Critical));
        assert_eq!(f.rule.as_deref(), Some("engine-remaining-life"));
        assert!(Filters::parse(None).unwrap().rule.is_none());
        let bad = Filters::parse(Some("min_severity=high")).unwrap_err();
        assert_eq!(bad.code(), "invalid_query");
        assert!(bad.to_string().contains("high"));
        let unknown = Filters::parse(Some("severity=warning")).unwrap_err();
        assert!(unknown.to_string().contains("`severity`"));
    }
}
