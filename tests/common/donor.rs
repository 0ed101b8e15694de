//! A donor's browser without a browser: it keeps the form's cookie, reads the anti-forgery
//! token out of the page, posts the form as a browser encodes it, and does not follow
//! redirects (tests look at where they lead).
#![allow(dead_code, clippy::unwrap_used)]

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

pub struct Donor {
    client: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

/// An answer, read whole.
pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    /// The anti-forgery token the form carries.
    pub fn form_token(&self) -> String {
        let marker = r#"name="form_token" value=""#;
        let start = self.body.find(marker).expect("a form token") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_owned()
    }
}

/// What a French donor fills in, for `amount` (as typed).
pub fn french_form(email: &str, amount: &str) -> Vec<(String, String)> {
    [
        ("amount", "other"),
        ("amount_other", amount),
        ("name", "Jeanne Martin"),
        ("email", email),
        ("address_line1", "3 rue des Lilas"),
        ("postal_code", "69002"),
        ("city", "Lyon"),
        ("country", "FR"),
        ("nationality", "FR"),
        ("attest", "natural_person"),
        ("attest", "own_funds"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl Donor {
    pub fn new(base: &str) -> Donor {
        Donor {
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookie: None,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        self.read(request.send().await.unwrap()).await
    }

    /// Posts `pairs` (URL-encoded, as a browser sends a form) to `path`.
    pub async fn post(&mut self, path: &str, pairs: &[(String, String)]) -> Page {
        let mut request = self.client.post(format!("{}{path}", self.base)).form(pairs);
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        self.read(request.send().await.unwrap()).await
    }

    /// Opens the donation form of `slug` and sends it with `pairs` and its token.
    pub async fn give(&mut self, slug: &str, pairs: &[(String, String)]) -> Page {
        let form = self.get(&format!("/donate/{slug}")).await;
        assert_eq!(form.status, StatusCode::OK);
        let mut pairs = pairs.to_vec();
        pairs.push(("form_token".into(), form.form_token()));
        self.post(&format!("/donate/{slug}"), &pairs).await
    }

    async fn read(&mut self, response: reqwest::Response) -> Page {
        if let Some(set) = response.headers().get(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }
}
