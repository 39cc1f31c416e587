//! Quiet hours (POLICY.md, CONTRACT §10): edges, state overlays, TX Sunday,
//! strictest-wins zones, DST, and exact `release_at` values in UTC.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use smsgate::contract::decision::{Decision, Outcome};
use smsgate::contract::event::parse;
use smsgate::policy::{Origin, Policy, Registry};
use smsgate::state::MemoryState;

fn policy() -> &'static Policy {
    static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::with_registry(
            Registry::parse(include_str!("../../config/senders.example.toml")).unwrap(),
        )
    })
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn consented(to: &str) -> MemoryState {
    let mut s = MemoryState::new();
    let line = json!({"to":to,"action":"opt_in","scope":"marketing","sender":"*",
                      "at":"2026-01-01T00:00:00Z","source":"web","evidence_id":"e"});
    s.apply_consent(
        smsgate::contract::consent::ConsentEvent::parse(line.to_string().as_bytes()).unwrap(),
    );
    s
}

fn event(to: &str, recipient: Value) -> Value {
    let (sender, body) = if to.starts_with("+86") {
        ("huinong-credit", "【惠农信贷】经营贷年化利率7.2%起 回T退订")
    } else {
        (
            "sunny-shop",
            "Sunny Shop: new arrivals this week. Reply STOP to opt out",
        )
    };
    json!({"message_id":"q-1","created_at":"2026-11-28T00:00:00Z","to":to,"sender":sender,
           "category":"marketing","body":body,"recipient":recipient})
}

fn decide(to: &str, recipient: Value, now: &str) -> Decision {
    let e = parse(event(to, recipient).to_string().as_bytes()).unwrap();
    policy().decide(&e, Origin::Intake, &consented(to), at(now))
}

/// Asserts approval at `now`.
fn allowed(to: &str, recipient: Value, now: &str) {
    let d = decide(to, recipient, now);
    assert_eq!(
        d.outcome,
        Outcome::Approve,
        "{to} at {now}: {:?}",
        d.reasons
    );
}

/// Asserts a defer at `now` released exactly at `release` (UTC), by `rule`.
fn deferred(to: &str, recipient: Value, now: &str, release: &str, rule: &str) {
    let d = decide(to, recipient.clone(), now);
    assert_eq!(d.outcome, Outcome::Defer, "{to} at {now}: {:?}", d.reasons);
    assert_eq!(d.release_at, Some(at(release)), "{to} at {now}");
    assert!(
        d.reasons.iter().any(|r| r.rule.as_ref() == rule),
        "{rule} in {:?}",
        d.reasons
    );
    let json: Value = serde_json::from_str(&d.to_json()).unwrap();
    assert_eq!(
        json["release_at"],
        json!(release),
        "release_at is written in UTC"
    );
    // At release the event passes when decided again in full.
    let e = parse(event(to, recipient).to_string().as_bytes()).unwrap();
    let again = policy().decide(&e, Origin::Release, &consented(to), at(release));
    assert_eq!(
        again.outcome,
        Outcome::Approve,
        "at release: {:?}",
        again.reasons
    );
}

const CN: &str = "+8613812345678";
const NY: &str = "+12125551234";

#[test]
fn cn_edges_0759_0800_2059_2100() {
    deferred(
        CN,
        json!({}),
        "2026-11-28T07:59:00+08:00",
        "2026-11-28T00:00:00Z",
        "cn.quiet_hours",
    );
    allowed(CN, json!({}), "2026-11-28T08:00:00+08:00");
    allowed(CN, json!({}), "2026-11-28T20:59:59+08:00");
    deferred(
        CN,
        json!({}),
        "2026-11-28T21:00:00+08:00",
        "2026-11-29T00:00:00Z",
        "cn.quiet_hours",
    );
    deferred(
        CN,
        json!({}),
        "2026-11-28T23:59:00+08:00",
        "2026-11-29T00:00:00Z",
        "cn.quiet_hours",
    );
}

#[test]
fn us_federal_edges_in_new_york() {
    // November: New York is UTC−5.
    deferred(
        NY,
        json!({}),
        "2026-11-27T07:59:00-05:00",
        "2026-11-27T13:00:00Z",
        "us.quiet_hours.federal",
    );
    allowed(NY, json!({}), "2026-11-27T08:00:00-05:00");
    allowed(NY, json!({}), "2026-11-27T20:59:00-05:00");
    deferred(
        NY,
        json!({}),
        "2026-11-27T21:00:00-05:00",
        "2026-11-28T13:00:00Z",
        "us.quiet_hours.federal",
    );
}

#[test]
fn state_overlays_from_area_code_or_region() {
    // Miami (305, FL): quiet from 20:00.
    allowed("+13055551234", json!({}), "2026-11-27T19:59:00-05:00");
    deferred(
        "+13055551234",
        json!({}),
        "2026-11-27T20:00:00-05:00",
        "2026-11-28T13:00:00Z",
        "us.quiet_hours.fl",
    );
    // Connecticut (203): not before 09:00.
    deferred(
        "+12035551234",
        json!({}),
        "2026-11-27T08:30:00-05:00",
        "2026-11-27T14:00:00Z",
        "us.quiet_hours.ct",
    );
    // A New York number whose recipient.region says Connecticut.
    deferred(
        NY,
        json!({"region":"US-CT"}),
        "2026-11-27T08:30:00-05:00",
        "2026-11-27T14:00:00Z",
        "us.quiet_hours.ct",
    );
    // Maryland (301), Washington (206), Oklahoma (405): 20:00.
    deferred(
        "+13015551234",
        json!({}),
        "2026-11-27T20:00:00-05:00",
        "2026-11-28T13:00:00Z",
        "us.quiet_hours.md",
    );
    deferred(
        "+12065551234",
        json!({}),
        "2026-11-27T20:00:00-08:00",
        "2026-11-28T16:00:00Z",
        "us.quiet_hours.wa",
    );
    deferred(
        "+14055551234",
        json!({}),
        "2026-11-27T20:00:00-06:00",
        "2026-11-28T14:00:00Z",
        "us.quiet_hours.ok",
    );
}

#[test]
fn texas_sunday_starts_at_noon() {
    // Dallas (214, America/Chicago, UTC−6 in November). 2026-11-28 is a Saturday.
    allowed("+12145551234", json!({}), "2026-11-28T10:00:00-06:00");
    deferred(
        "+12145551234",
        json!({}),
        "2026-11-28T08:30:00-06:00",
        "2026-11-28T15:00:00Z",
        "us.quiet_hours.tx",
    );
    deferred(
        "+12145551234",
        json!({}),
        "2026-11-29T10:00:00-06:00",
        "2026-11-29T18:00:00Z",
        "us.quiet_hours.tx",
    );
    // Saturday night waits for Sunday noon, not 09:00.
    deferred(
        "+12145551234",
        json!({}),
        "2026-11-28T21:30:00-06:00",
        "2026-11-29T18:00:00Z",
        "us.quiet_hours.tx",
    );
    allowed("+12145551234", json!({}), "2026-11-29T12:00:00-06:00");
}

#[test]
fn multi_zone_area_code_is_allowed_only_where_every_zone_allows() {
    // 208 (Idaho) spans Boise/Denver (UTC−7) and Los Angeles (UTC−8).
    // 08:30 Mountain is 07:30 Pacific: wait for 08:00 Pacific.
    deferred(
        "+12085551234",
        json!({}),
        "2026-11-27T08:30:00-07:00",
        "2026-11-27T16:00:00Z",
        "us.quiet_hours.federal",
    );
    allowed("+12085551234", json!({}), "2026-11-27T09:00:00-07:00");
    // 21:00 Mountain is 20:00 Pacific: Mountain is already quiet.
    deferred(
        "+12085551234",
        json!({}),
        "2026-11-27T21:00:00-07:00",
        "2026-11-28T16:00:00Z",
        "us.quiet_hours.federal",
    );
    // recipient.timezone settles it.
    allowed(
        "+12085551234",
        json!({"timezone":"America/Boise"}),
        "2026-11-27T08:30:00-07:00",
    );
}

#[test]
fn unknown_area_code_uses_all_four_zones_and_0900_2000() {
    // 555 is not in the table: allowed only 09:00–20:00 in New York,
    // Chicago, Denver and Los Angeles at once, i.e. 12:00–20:00 Eastern.
    deferred(
        "+15555551234",
        json!({}),
        "2026-11-27T11:00:00-05:00",
        "2026-11-27T17:00:00Z",
        "us.quiet_hours.federal",
    );
    allowed("+15555551234", json!({}), "2026-11-27T12:00:00-05:00");
    allowed("+15555551234", json!({}), "2026-11-27T19:59:00-05:00");
    deferred(
        "+15555551234",
        json!({}),
        "2026-11-27T20:00:00-05:00",
        "2026-11-28T17:00:00Z",
        "us.quiet_hours.federal",
    );
}

#[test]
fn recipient_timezone_overrides_the_number() {
    // A +86 number whose recipient lives in New York: 10:00 Shanghai is 21:00 in New York.
    deferred(
        CN,
        json!({"timezone":"America/New_York"}),
        "2026-11-28T02:00:00Z",
        "2026-11-28T13:00:00Z",
        "cn.quiet_hours",
    );
}

#[test]
fn dst_transitions_in_us_zones() {
    // Spring forward (2027-03-14): Saturday 22:00 EST → Sunday 08:00 EDT = 12:00Z.
    deferred(
        NY,
        json!({}),
        "2027-03-13T22:00:00-05:00",
        "2027-03-14T12:00:00Z",
        "us.quiet_hours.federal",
    );
    // Fall back (2026-11-01): Saturday 22:00 EDT → Sunday 08:00 EST = 13:00Z.
    deferred(
        NY,
        json!({}),
        "2026-10-31T22:00:00-04:00",
        "2026-11-01T13:00:00Z",
        "us.quiet_hours.federal",
    );
    // During the repeated hour it is night either way.
    deferred(
        NY,
        json!({}),
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T13:00:00Z",
        "us.quiet_hours.federal",
    );
    // Los Angeles on the spring-forward day.
    deferred(
        "+12135551234",
        json!({}),
        "2027-03-14T03:30:00-07:00",
        "2027-03-14T15:00:00Z",
        "us.quiet_hours.federal",
    );
}

/// Release time under a one-rule pack allowing `window` in New York.
fn release_under(window: &str, now: &str) -> Option<DateTime<Utc>> {
    let pack = format!(
        "[pack]\nname = \"default\"\n[[rule]]\nid = \"x.quiet\"\nkind = \"quiet_hours\"\ncode = \"quiet_hours\"\n\
         citation = \"test\"\nallowed = \"{window}\"\nzones = [\"America/New_York\"]\n"
    );
    let registry = Registry::parse(include_str!("../../config/senders.example.toml")).unwrap();
    let p = Policy::from_parts(&[("x.toml".into(), pack)], registry).unwrap();
    let e = parse(event("+447700900123", json!({})).to_string().as_bytes()).unwrap();
    p.decide(&e, Origin::Intake, &consented("+447700900123"), at(now))
        .release_at
}

#[test]
fn windows_starting_in_a_dst_gap_or_repeat() {
    // 02:30 does not exist on 2027-03-14 in New York: the window opens when
    // the clock jumps to 03:00 EDT (07:00Z).
    assert_eq!(
        release_under("02:30-05:00", "2027-03-13T06:00:00-05:00"),
        Some(at("2027-03-14T07:00:00Z"))
    );
    // 01:30 happens twice on 2026-11-01: the first one (EDT) counts.
    assert_eq!(
        release_under("01:30-05:00", "2026-10-31T06:00:00-04:00"),
        Some(at("2026-11-01T01:30:00-04:00"))
    );
}
