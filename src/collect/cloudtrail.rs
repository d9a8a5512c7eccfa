//! CloudTrail collector: trails (shadow trails included) with status and event selectors, and
//! the KMS event history over the window from LookupEvents.
//!
//! LookupEvents allows two requests a second per account and region, so its pages are paced by
//! [`crate::collect::Settings::lookup_interval`]. The history is kept as counts plus the
//! notable events (administrative calls and failed calls), not as the full event stream; the
//! counts always cover every event read.

use crate::collect::{ApiFailure, RegionCtx, to_sdk_time, to_utc};
use crate::logs::record::{KMS_SOURCE, RawRecord};
use crate::snapshot::{EventSelectors, EvidenceKind, KmsEvent, KmsEventSummary, Trail};
use aws_sdk_cloudtrail::Client;
use aws_sdk_cloudtrail::types::{
    AdvancedEventSelector, Event, EventSelector, LookupAttribute, LookupAttributeKey, ReadWriteType,
};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const SERVICE: &str = "cloudtrail";

/// KMS operations that change a key, its policy, grants, rotation, aliases or key store: always
/// notable, whether they succeeded or not.
pub const ADMINISTRATIVE_EVENTS: &[&str] = &[
    "CancelKeyDeletion",
    "ConnectCustomKeyStore",
    "CreateAlias",
    "CreateCustomKeyStore",
    "CreateGrant",
    "CreateKey",
    "DeleteAlias",
    "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial",
    "DisableKey",
    "DisableKeyRotation",
    "DisconnectCustomKeyStore",
    "EnableKey",
    "EnableKeyRotation",
    "ImportKeyMaterial",
    "PutKeyPolicy",
    "ReplicateKey",
    "RetireGrant",
    "RevokeGrant",
    "RotateKeyOnDemand",
    "ScheduleKeyDeletion",
    "UpdateAlias",
    "UpdateCustomKeyStore",
    "UpdateKeyDescription",
    "UpdatePrimaryRegion",
];

/// What the CloudTrail collector found in one region.
#[derive(Debug, Default)]
pub struct TrailEvidence {
    pub trails: Vec<Trail>,
    pub kms_events: Option<KmsEventSummary>,
}

/// Collects the region's trails and, when enabled, its KMS event history (or takes the one the
/// run's LookupEvents event source already read, from [`crate::collect::Settings::known_events`]).
///
/// A multi-Region trail appears in every region as a shadow trail. Its status and selectors are
/// read once, in its home region, when that region is in `scope_regions`
/// ([`fill_shadow_trails`] copies them to the shadows); otherwise they are read through the
/// shadow.
pub async fn collect(
    ctx: &RegionCtx<'_>,
    client: &Client,
    scope_regions: &[String],
) -> TrailEvidence {
    let known = ctx
        .settings
        .known_events
        .get(&(ctx.account_id.clone(), ctx.region.clone()));
    let (trails, kms_events) = tokio::join!(trails(ctx, client, scope_regions), async {
        match known {
            // The run's LookupEvents event source read this history already.
            Some(summary) => Some(summary.clone()),
            None if ctx.settings.lookup_events => kms_events(ctx, client).await,
            None => None,
        }
    });
    TrailEvidence { trails, kms_events }
}

async fn trails(ctx: &RegionCtx<'_>, client: &Client, scope_regions: &[String]) -> Vec<Trail> {
    let described = match client
        .describe_trails()
        .include_shadow_trails(true)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            ctx.gap(
                SERVICE,
                "DescribeTrails",
                EvidenceKind::CloudTrailTrails,
                None,
                ApiFailure::from_sdk(&e),
            );
            return Vec::new();
        }
    };
    let listed: Vec<Trail> = described
        .trail_list()
        .iter()
        .map(|t| Trail {
            name: t.name().unwrap_or_default().to_string(),
            arn: t.trail_arn().unwrap_or_default().to_string(),
            home_region: t.home_region().unwrap_or(&ctx.region).to_string(),
            is_multi_region: t.is_multi_region_trail().unwrap_or(false),
            is_organization_trail: t.is_organization_trail().unwrap_or(false),
            log_file_validation: t.log_file_validation_enabled().unwrap_or(false),
            kms_key_id: t.kms_key_id().map(str::to_string),
            s3_bucket: t.s3_bucket_name().map(str::to_string),
            is_logging: None,
            latest_delivery_error: None,
            latest_delivery_time: None,
            selectors: None,
        })
        .collect();
    futures_util::stream::iter(listed.into_iter().map(|trail| async move {
        let shadow_of_scoped_home =
            trail.home_region != ctx.region && scope_regions.contains(&trail.home_region);
        if shadow_of_scoped_home {
            trail
        } else {
            inspect(ctx, client, trail).await
        }
    }))
    .buffered(ctx.settings.service_concurrency.max(1))
    .collect()
    .await
}

/// Copies status and selectors from each trail as read in its home region to its shadow trails
/// in the account's other regions.
pub fn fill_shadow_trails(regions: &mut [crate::snapshot::RegionEvidence]) {
    let homes: Vec<Trail> = regions
        .iter()
        .flat_map(|r| r.trails.iter().filter(move |t| t.home_region == r.region))
        .cloned()
        .collect();
    for region in regions.iter_mut() {
        let name = region.region.clone();
        for trail in region.trails.iter_mut().filter(|t| t.home_region != name) {
            if let Some(home) = homes.iter().find(|h| h.arn == trail.arn) {
                trail.is_logging = home.is_logging;
                trail.latest_delivery_error = home.latest_delivery_error.clone();
                trail.latest_delivery_time = home.latest_delivery_time;
                trail.selectors = home.selectors.clone();
            }
        }
    }
}

/// Adds status and selectors to a trail.
async fn inspect(ctx: &RegionCtx<'_>, client: &Client, mut trail: Trail) -> Trail {
    let id = if trail.arn.is_empty() {
        trail.name.clone()
    } else {
        trail.arn.clone()
    };
    let (status, selectors) = tokio::join!(
        client.get_trail_status().name(&id).send(),
        client.get_event_selectors().trail_name(&id).send()
    );
    match status {
        Ok(s) => {
            trail.is_logging = s.is_logging();
            trail.latest_delivery_error = s
                .latest_delivery_error()
                .filter(|e| !e.is_empty())
                .map(str::to_string);
            trail.latest_delivery_time = s.latest_delivery_time().and_then(to_utc);
        }
        Err(e) => ctx.gap(
            SERVICE,
            "GetTrailStatus",
            EvidenceKind::CloudTrailStatus,
            Some(&id),
            ApiFailure::from_sdk(&e),
        ),
    }
    match selectors {
        Ok(s) => {
            trail.selectors = Some(if s.advanced_event_selectors().is_empty() {
                basic_selectors(s.event_selectors())
            } else {
                advanced_selectors(s.advanced_event_selectors())
            });
        }
        Err(e) => ctx.gap(
            SERVICE,
            "GetEventSelectors",
            EvidenceKind::CloudTrailSelectors,
            Some(&id),
            ApiFailure::from_sdk(&e),
        ),
    }
    trail
}

/// Basic selectors: management events are on where a selector includes them (the default), with
/// its read/write type; KMS events are in unless every such selector excludes the KMS source.
pub fn basic_selectors(selectors: &[EventSelector]) -> EventSelectors {
    let mut out = EventSelectors {
        management_events: false,
        management_read: false,
        management_write: false,
        kms_events_included: false,
        selector_kind: "basic".into(),
        raw: String::new(),
    };
    let mut raw = Vec::new();
    for s in selectors {
        let includes = s.include_management_events().unwrap_or(true);
        let rw = s.read_write_type().cloned().unwrap_or(ReadWriteType::All);
        raw.push(json!({
            "ReadWriteType": rw.as_str(),
            "IncludeManagementEvents": includes,
            "ExcludeManagementEventSources": s.exclude_management_event_sources(),
            "DataResources": s.data_resources().iter().map(|d| json!({
                "Type": d.r#type(),
                "Values": d.values(),
            })).collect::<Vec<_>>(),
        }));
        if !includes {
            continue;
        }
        out.management_events = true;
        out.management_read |= matches!(rw, ReadWriteType::All | ReadWriteType::ReadOnly);
        out.management_write |= matches!(rw, ReadWriteType::All | ReadWriteType::WriteOnly);
        if !s
            .exclude_management_event_sources()
            .iter()
            .any(|src| src == KMS_SOURCE)
        {
            out.kms_events_included = true;
        }
    }
    out.raw = Value::Array(raw).to_string();
    out
}

/// Advanced selectors: a selector with `eventCategory = Management` logs management events;
/// `readOnly` narrows it to reads or writes; an `eventSource` condition decides whether KMS is in.
pub fn advanced_selectors(selectors: &[AdvancedEventSelector]) -> EventSelectors {
    let mut out = EventSelectors {
        management_events: false,
        management_read: false,
        management_write: false,
        kms_events_included: false,
        selector_kind: "advanced".into(),
        raw: String::new(),
    };
    let mut raw = Vec::new();
    for s in selectors {
        let fields = s.field_selectors();
        raw.push(json!({
            "Name": s.name(),
            "FieldSelectors": fields.iter().map(|f| json!({
                "Field": f.field(),
                "Equals": f.equals(),
                "StartsWith": f.starts_with(),
                "EndsWith": f.ends_with(),
                "NotEquals": f.not_equals(),
                "NotStartsWith": f.not_starts_with(),
                "NotEndsWith": f.not_ends_with(),
            })).collect::<Vec<_>>(),
        }));
        let field = |name: &str| fields.iter().find(|f| f.field() == name);
        let management =
            field("eventCategory").is_some_and(|f| f.equals().iter().any(|v| v == "Management"));
        if !management {
            continue;
        }
        let (read, write) = match field("readOnly").map(|f| f.equals()) {
            Some([v]) if v == "true" => (true, false),
            Some([v]) if v == "false" => (false, true),
            _ => (true, true),
        };
        let kms = match field("eventSource") {
            None => true,
            Some(f) => {
                let excluded = f.not_equals().iter().any(|v| v == KMS_SOURCE);
                let listed = f.equals().is_empty() || f.equals().iter().any(|v| v == KMS_SOURCE);
                listed && !excluded
            }
        };
        out.management_events = true;
        out.management_read |= read;
        out.management_write |= write;
        out.kms_events_included |= kms;
    }
    out.raw = Value::Array(raw).to_string();
    out
}

/// A window's KMS event summary, built from LookupEvents pages as they are read: by the
/// collector, or by the LookupEvents event source when it reads the same history (which then
/// hands it to the collector instead of the history being read twice).
#[derive(Debug, Clone)]
pub struct SummaryBuilder {
    summary: KmsEventSummary,
}

impl SummaryBuilder {
    pub fn new(since: DateTime<Utc>, until: DateTime<Utc>) -> SummaryBuilder {
        SummaryBuilder {
            summary: KmsEventSummary {
                window_start: since,
                window_end: until,
                total_events: 0,
                by_event_name: BTreeMap::new(),
                errors_by_code: BTreeMap::new(),
                notable: Vec::new(),
                notable_omitted: 0,
            },
        }
    }

    /// Counts one event, and keeps it when it is notable (administrative or failed).
    pub fn add(&mut self, event: &Event) {
        let until = self.summary.window_end;
        summarise(&mut self.summary, event, until);
    }

    /// Events counted so far.
    pub fn total(&self) -> u64 {
        self.summary.total_events
    }

    /// The summary: the notable events newest first, at most
    /// [`KmsEventSummary::NOTABLE_LIMIT`] of them (the rest counted as omitted).
    pub fn finish(mut self) -> KmsEventSummary {
        let summary = &mut self.summary;
        summary.notable.sort_by(|a, b| {
            b.event_time
                .cmp(&a.event_time)
                .then(a.event_id.cmp(&b.event_id))
        });
        let limit = KmsEventSummary::NOTABLE_LIMIT;
        if summary.notable.len() > limit {
            summary.notable_omitted = (summary.notable.len() - limit) as u64;
            summary.notable.truncate(limit);
        }
        self.summary
    }
}

/// Counts one event into the summary, and keeps it when it is notable (administrative or
fn summarise(summary: &mut KmsEventSummary, event: &Event, until: DateTime<Utc>) {
    let name = event.event_name().unwrap_or("<unnamed>").to_string();
    // The same typed record the log-file reader uses; an unreadable one still counts.
    let record: Option<RawRecord<'_>> = event
        .cloud_trail_event()
        .and_then(|raw| serde_json::from_str(raw).ok());
    let text = |v: Option<&std::borrow::Cow<'_, str>>| v.map(|s| s.to_string());
    let error_code = text(record.as_ref().and_then(|r| r.error_code.as_ref()));
    summary.total_events += 1;
    *summary.by_event_name.entry(name.clone()).or_default() += 1;
    if let Some(code) = &error_code {
        *summary.errors_by_code.entry(code.clone()).or_default() += 1;
    }
    let notable = error_code.is_some() || ADMINISTRATIVE_EVENTS.contains(&name.as_str());
    if !notable {
        return;
    }
    let key_arn = text(
        record
            .as_ref()
            .and_then(|r| r.resources.iter().flatten().find_map(|r| r.arn.as_ref())),
    )
    .or_else(|| {
        event
            .resources()
            .iter()
            .find(|r| r.resource_type() == Some("AWS::KMS::Key"))
            .and_then(|r| r.resource_name().map(str::to_string))
    })
    .or_else(|| {
        text(
            record
                .as_ref()
                .and_then(|r| r.request_parameters.as_ref())
                .and_then(|p| p.key_id.as_ref()),
        )
    });
    let principal_arn = text(
        record
            .as_ref()
            .and_then(|r| r.user_identity.as_ref())
            .and_then(|u| u.arn.as_ref()),
    );
    let source_ip = text(record.as_ref().and_then(|r| r.source_ip_address.as_ref()));
    summary.notable.push(KmsEvent {
        event_id: event.event_id().unwrap_or_default().to_string(),
        event_time: event.event_time().and_then(to_utc).unwrap_or(until),
        event_name: name,
        principal_arn,
        source_ip,
        key_arn,
        error_code,
    });
}

/// What [`kms_event_pages`] read.
#[derive(Debug, Clone, Copy)]
pub struct Pages {
    pub read: u64,
    /// Whether the last page of the window was read (not stopped early by the caller).
    pub complete: bool,
}

/// Why [`kms_event_pages`] stopped before the last page.
#[derive(Debug)]
pub enum PagesStop<E> {
    /// A page could not be read.
    Api(ApiFailure),
    /// The caller refused a page.
    Page(E),
}

/// Pages through LookupEvents' KMS events between `since` and `until` (newest first, 50 a page,
/// the API's maximum), pausing `pace` between pages: LookupEvents allows two requests a second
/// per account and region. Each page's events go to `on_page`, which returns `Ok(false)` to
/// stop early (keeping what was read) or an error to stop with it.
/// Both the collector's summary and the LookupEvents event source read the history this way.
pub async fn kms_event_pages<E>(
    client: &Client,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    pace: Duration,
    mut on_page: impl FnMut(&[Event]) -> Result<bool, E>,
) -> Result<Pages, PagesStop<E>> {
    let attribute = LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::EventSource)
        .attribute_value(KMS_SOURCE)
        .build()
        .map_err(|e| PagesStop::Api(ApiFailure::new("InvalidRequest", e.to_string())))?;
    let mut token: Option<String> = None;
    let mut pages = 0u64;
    loop {
        if pages > 0 {
            tokio::time::sleep(pace).await;
        }
        let page = client
            .lookup_events()
            .lookup_attributes(attribute.clone())
            .start_time(to_sdk_time(since))
            .end_time(to_sdk_time(until))
            .max_results(50)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| PagesStop::Api(ApiFailure::from_sdk(&e)))?;
        pages += 1;
        let more = on_page(page.events()).map_err(PagesStop::Page)?;
        token = page.next_token().map(str::to_string);
        if token.is_none() || !more {
            return Ok(Pages {
                read: pages,
                complete: token.is_none(),
            });
        }
    }
}

async fn kms_events(ctx: &RegionCtx<'_>, client: &Client) -> Option<KmsEventSummary> {
    let settings = ctx.settings;
    let mut summary = SummaryBuilder::new(settings.since, settings.until);
    let mut limited = None;
    let read = kms_event_pages(
        client,
        settings.since,
        settings.until,
        settings.lookup_interval,
        |events| {
            for event in events {
                summary.add(event);
            }
            match settings.max_events {
                Some(limit) if summary.total() >= limit => {
                    limited = Some(limit);
                    Ok::<_, std::convert::Infallible>(false)
                }
                _ => Ok(true),
            }
        },
    )
    .await;
    let complete = match read {
        Ok(pages) => pages.complete,
        // A partial history would under-count failures and admin events: the summary is
        // dropped and the gap says why.
        Err(PagesStop::Api(failure)) => {
            ctx.gap(
                SERVICE,
                "LookupEvents",
                EvidenceKind::CloudTrailEvents,
                None,
                failure,
            );
            return None;
        }
        Err(PagesStop::Page(never)) => match never {},
    };
    if let Some(limit) = limited.filter(|_| !complete) {
        // The counts now cover only the newest events: say so, and keep what was read.
        ctx.gap(
            SERVICE,
            "LookupEvents",
            EvidenceKind::CloudTrailEvents,
            None,
            ApiFailure::new(
                "EventLimitReached",
                format!(
                    "stopped after the newest {limit} KMS events; the window holds more. Raise --max-events, shorten --since, or analyse the trail's log files instead"
                ),
            ),
        );
    }
    Some(summary.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudtrail::types::AdvancedFieldSelector;

    fn field(name: &str, equals: &[&str], not_equals: &[&str]) -> AdvancedFieldSelector {
        let mut b = AdvancedFieldSelector::builder().field(name);
        for e in equals {
            b = b.equals(*e);
        }
        for n in not_equals {
            b = b.not_equals(*n);
        }
        b.build().expect("field selector")
    }

    fn advanced(fields: Vec<AdvancedFieldSelector>) -> AdvancedEventSelector {
        AdvancedEventSelector::builder()
            .set_field_selectors(Some(fields))
            .build()
            .expect("selector")
    }

    #[test]
    fn advanced_read_only_management_events_are_not_write_events() {
        let s = advanced_selectors(&[advanced(vec![
            field("eventCategory", &["Management"], &[]),
            field("readOnly", &["true"], &[]),
        ])]);
        assert!(s.management_events && s.management_read && !s.management_write);
        assert!(s.kms_events_included);
    }

    #[test]
    fn advanced_event_source_lists_decide_kms() {
        let only_s3 = advanced_selectors(&[advanced(vec![
            field("eventCategory", &["Management"], &[]),
            field("eventSource", &["s3.amazonaws.com"], &[]),
        ])]);
        assert!(!only_s3.kms_events_included);
        let with_kms = advanced_selectors(&[advanced(vec![
            field("eventCategory", &["Management"], &[]),
            field("eventSource", &["s3.amazonaws.com", KMS_SOURCE], &[]),
        ])]);
        assert!(with_kms.kms_events_included);
        let data_only =
            advanced_selectors(&[advanced(vec![field("eventCategory", &["Data"], &[])])]);
        assert!(!data_only.management_events && !data_only.kms_events_included);
    }

    #[test]
    fn basic_selector_excluding_kms_or_management_events() {
        let excluded = basic_selectors(&[EventSelector::builder()
            .read_write_type(ReadWriteType::WriteOnly)
            .include_management_events(true)
            .exclude_management_event_sources(KMS_SOURCE)
            .build()]);
        assert!(excluded.management_write && !excluded.management_read);
        assert!(!excluded.kms_events_included);
        let none = basic_selectors(&[EventSelector::builder()
            .include_management_events(false)
            .build()]);
        assert!(!none.management_events && !none.kms_events_included);
    }
}
