//! Logging of refused access: Zenoh's access control drops what a peer may not do (e.g. an
//! unauthorized `start` query) inside the router, and reports it only as a TRACE event of its
//! interceptor. This layer listens to exactly that target and turns each refused control
//! action (a concrete key under `…/ctl/`) into a WARN on `demotape::access` (first occurrence
//! of each distinct denial, then every 1000th), so a refused operator action is in the
//! recorder's log whatever RUST_LOG says; other denials (e.g. a peer publishing where it may
//! not) go to DEBUG once each.
//!
//! Cost: with access control enabled, Zenoh emits one such TRACE event per message it
//! checks; this layer formats it and looks for "unauthorized" (about a microsecond). Without
//! access control there are no such events.

use std::collections::HashMap;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterFn, Filtered};
use tracing_subscriber::layer::Context;

const ACL_TARGET: &str = "zenoh::net::routing::interceptor::access_control";

#[derive(Default)]
pub struct AclAudit {
    seen: Mutex<HashMap<String, u64>>,
}

type Filter = FilterFn<fn(&tracing::Metadata<'_>) -> bool>;

fn acl_only(m: &tracing::Metadata<'_>) -> bool {
    m.target().starts_with(ACL_TARGET)
}

impl AclAudit {
    pub fn layer<S>() -> Filtered<AclAudit, Filter, S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        AclAudit::default().with_filter(FilterFn::new(
            acl_only as fn(&tracing::Metadata<'_>) -> bool,
        ))
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for AclAudit {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        if !m.0.contains("unauthorized") && !m.0.contains("authorization error") {
            return;
        }
        // "Using cached result: <zid> is unauthorized to <action> on <key>" and
        // "<zid> on <subject> is unauthorized to <action> on <key>": key by what was refused
        let what = m.0.trim_start_matches("Using cached result: ").to_string();
        let n = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let c = seen.entry(what.clone()).or_insert(0);
            *c += 1;
            *c
        };
        // Zenoh also evaluates (and reports) permissions ahead of time for declared key
        // expressions; those carry wildcards. What a peer actually tried has a concrete key.
        let key = what.rsplit(" on ").next().unwrap_or_default();
        let attempt = !key.contains('*');
        if attempt && key.contains("/ctl/") {
            if n == 1 || n % 1000 == 0 {
                tracing::warn!(target: "demotape::access", count = n, "access refused: {what}");
            }
        } else if n == 1 {
            tracing::debug!(target: "demotape::access", "access refused: {what}");
        }
    }
}
