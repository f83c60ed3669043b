//! URLs in e-mail, clicked later (worker → manager → workers).
//!
//! A worker that sees URLs in a mail body sends them to the manager (`SMTP::mail_urls`); the manager sends them to
//! every worker (`SMTP::watch_urls`), so whichever worker later sees an HTTP request for one of them raises
//! `SMTP::URL_Clicked`, even when the mail and the click were analysed on different workers.

use std::collections::HashMap;

use super::{Analysis, Cx, Data, DetectConfig, EngineEvent, Event, Handler, Notice, Role};

pub const MAIL_URLS: &str = "SMTP::mail_urls";
pub const WATCH_URLS: &str = "SMTP::watch_urls";

pub struct MailUrlClicks;

impl Analysis for MailUrlClicks {
    fn name(&self) -> &'static str {
        "mail-urls"
    }

    fn events(&self) -> &'static [&'static str] {
        &[MAIL_URLS, WATCH_URLS]
    }

    fn handler(&self, role: Role, _cfg: &DetectConfig) -> Option<Box<dyn Handler>> {
        match role {
            Role::Worker => Some(Box::new(UrlWorker::default())),
            Role::Manager => Some(Box::new(UrlManager)),
            _ => None,
        }
    }
}

/// The form URLs are compared in: no scheme, host lower-cased (`http://Example.com/a` → `example.com/a`).
pub fn normalize_url(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    let rest =
        ["http://", "https://"].iter().find_map(|s| lower.starts_with(s).then(|| &url[s.len()..])).unwrap_or(url);
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    format!("{}{}", host.to_ascii_lowercase(), if path.is_empty() { "/" } else { path })
}

fn url_list(d: Option<&Data>) -> Vec<String> {
    match d {
        Some(Data::Vector(v)) => v.iter().filter_map(Data::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

struct MailOrigin {
    mail_uid: String,
    until: f64,
}

#[derive(Default)]
struct UrlWorker {
    /// Normalized URL → the mail it came from.
    watched: HashMap<String, MailOrigin>,
}

impl Handler for UrlWorker {
    fn engine(&mut self, ev: &EngineEvent, cx: &mut Cx) {
        match ev {
            EngineEvent::MailUrls(m) => {
                let urls = m.urls.iter().map(|u| Data::Str(u.clone())).collect();
                cx.publish_role(Role::Manager, MAIL_URLS, vec![Data::Str(m.uid.clone()), Data::Vector(urls)]);
            }
            EngineEvent::HttpRequest(h) => {
                let Some(url) = h.url() else { return };
                let Some(origin) = self.watched.get(&normalize_url(&url)).filter(|o| o.until > cx.now()) else {
                    return;
                };
                let msg = format!("{} clicked a URL seen in e-mail: http://{url}", h.id.orig_h);
                let notice = Notice::new("SMTP::URL_Clicked", msg)
                    .sub_message(format!("mail {}", origin.mail_uid))
                    .conn(&h.uid, h.id)
                    .identifier(format!("{}-{url}", h.id.orig_h));
                cx.notice(notice);
            }
            _ => {}
        }
    }

    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name != WATCH_URLS {
            return;
        }
        let Some(mail_uid) = ev.args.first().and_then(Data::as_str) else { return };
        let until = cx.now() + cx.config().mail_urls.expiry;
        for url in url_list(ev.args.get(1)) {
            self.watched.insert(normalize_url(&url), MailOrigin { mail_uid: mail_uid.to_string(), until });
        }
    }

    fn tick(&mut self, cx: &mut Cx) {
        let now = cx.now();
        self.watched.retain(|_, o| o.until > now);
    }
}

struct UrlManager;

impl Handler for UrlManager {
    fn event(&mut self, ev: &Event, cx: &mut Cx) {
        if ev.name == MAIL_URLS {
            cx.publish_role(Role::Worker, WATCH_URLS, ev.args.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_compare_without_scheme_and_host_case() {
        assert_eq!(normalize_url("http://Example.COM/Path?q=1"), "example.com/Path?q=1");
        assert_eq!(normalize_url("HTTPS://example.com"), "example.com/");
        assert_eq!(normalize_url("example.com/x"), "example.com/x");
    }
}
