//! Consent semantics (CONTRACT §3 and §10): given a recipient's history,
//! may this sender send this category now?

use chrono::{DateTime, Utc};

use crate::contract::consent::{ConsentAction, ConsentScope};
use crate::contract::decision::ReasonCode;
use crate::contract::event::{Category, OutboundSms};
use crate::policy::view::ConsentView;

/// The consent verdict for one event: at most one consent code, plus the
/// personalization refusal which applies on top of it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConsentVerdict {
    pub consent: Option<(ReasonCode, String)>,
    pub personalization_refused: bool,
}

/// Orders two events by `at`, an `opt_out` winning a tie.
fn later(a_at: DateTime<Utc>, a: ConsentAction, b_at: DateTime<Utc>, b: ConsentAction) -> bool {
    (a_at, a == ConsentAction::OptOut) > (b_at, b == ConsentAction::OptOut)
}

pub fn evaluate(
    event: &OutboundSms,
    state: &dyn ConsentView,
    now: DateTime<Utc>,
) -> ConsentVerdict {
    let sender = event.sender.as_str();
    // Marketing: latest opt-out (scope marketing/all) and the opt-ins after it.
    let mut last_out: Option<DateTime<Utc>> = None;
    let mut any_in = false;
    // Latest scope-`all` event, for notifications.
    let mut last_all: Option<(DateTime<Utc>, ConsentAction)> = None;
    // Latest personalization event.
    let mut last_pers: Option<(DateTime<Utc>, ConsentAction)> = None;

    state.for_each_consent(&event.to, &mut |f| {
        if !f.sender.covers(sender) {
            return;
        }
        let newer = |cur: Option<(DateTime<Utc>, ConsentAction)>| {
            cur.is_none_or(|(at, a)| later(f.at, f.action, at, a))
        };
        match f.scope {
            ConsentScope::Personalization => {
                if newer(last_pers) {
                    last_pers = Some((f.at, f.action));
                }
            }
            ConsentScope::Marketing | ConsentScope::All => {
                if f.scope == ConsentScope::All && newer(last_all) {
                    last_all = Some((f.at, f.action));
                }
                match f.action {
                    ConsentAction::OptOut => {
                        if last_out.is_none_or(|t| f.at > t) {
                            last_out = Some(f.at);
                        }
                    }
                    ConsentAction::OptIn => any_in = true,
                }
            }
        }
    });

    let consent = match event.category {
        Category::Otp => None,
        Category::Notification => match last_all {
            Some((_, ConsentAction::OptOut)) => Some((
                ReasonCode::ConsentRevoked,
                format!("recipient opted out of all messages from {sender}"),
            )),
            _ => None,
        },
        Category::Marketing => {
            // Opt-ins strictly later than the latest opt-out count (on a tie
            // the opt-out wins); a second pass over the history avoids
            // collecting them.
            let (mut live, mut unexpired) = (0usize, 0usize);
            if any_in {
                state.for_each_consent(&event.to, &mut |f| {
                    if f.sender.covers(sender)
                        && matches!(f.scope, ConsentScope::Marketing | ConsentScope::All)
                        && f.action == ConsentAction::OptIn
                        && last_out.is_none_or(|out| f.at > out)
                    {
                        live += 1;
                        if f.expires_at.is_none_or(|e| now < e) {
                            unexpired += 1;
                        }
                    }
                });
            }
            if live == 0 {
                if any_in || last_out.is_some() {
                    Some((
                        ReasonCode::ConsentRevoked,
                        format!("marketing opt-out from {sender} is newer than every opt-in"),
                    ))
                } else {
                    Some((
                        ReasonCode::ConsentMissing,
                        format!("no marketing opt-in for {sender}"),
                    ))
                }
            } else if unexpired == 0 {
                Some((
                    ReasonCode::ConsentExpired,
                    format!("every marketing opt-in for {sender} has expired"),
                ))
            } else {
                None
            }
        }
    };

    ConsentVerdict {
        consent,
        personalization_refused: event.personalized
            && matches!(last_pers, Some((_, ConsentAction::OptOut))),
    }
}
