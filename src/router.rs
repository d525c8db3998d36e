//! The public URL layout (contract §1), written once: the table below routes
//! requests, builds the URLs `trackedge sign` prints and finds the token in
//! the URLs `trackedge verify` reads.
//!
//! Routing is a handful of prefix and suffix comparisons on the path; it
//! allocates nothing.

use http::Method;

use crate::event::EventType;
use crate::token::TokenType;

/// Which public route a request took. Its [`Route::label`] is the `route`
/// metric label; `NotFound` stays last: `COUNT` counts through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Open,
    Click,
    Unsubscribe,
    Beacon,
    OptOut,
    OptIn,
    Robots,
    NotFound,
}

impl Route {
    /// Distinct `route` labels (opt-in and opt-out share one).
    pub const LABELS: [&'static str; 7] = [
        EventType::Open.as_str(),
        EventType::Click.as_str(),
        EventType::Unsubscribe.as_str(),
        EventType::Beacon.as_str(),
        "optout",
        "robots",
        "not_found",
    ];

    /// The position of this route's label in [`Route::LABELS`].
    pub fn label_index(self) -> usize {
        match self {
            Route::Open => 0,
            Route::Click => 1,
            Route::Unsubscribe => 2,
            Route::Beacon => 3,
            Route::OptOut | Route::OptIn => 4,
            Route::Robots => 5,
            Route::NotFound => 6,
        }
    }

    pub fn label(self) -> &'static str {
        Self::LABELS[self.label_index()]
    }

    /// The route tokens of type `t` are valid on.
    pub fn of_token(t: TokenType) -> Route {
        match t {
            TokenType::Open => Route::Open,
            TokenType::Click => Route::Click,
            TokenType::Unsubscribe => Route::Unsubscribe,
        }
    }
}

/// The methods a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Methods {
    GetHead,
    GetPost,
    GetHeadPost,
}

impl Methods {
    pub fn allows(self, m: &Method) -> bool {
        match self {
            Methods::GetHead => matches!(*m, Method::GET | Method::HEAD),
            Methods::GetPost => matches!(*m, Method::GET | Method::POST),
            Methods::GetHeadPost => matches!(*m, Method::GET | Method::HEAD | Method::POST),
        }
    }

    /// The `Allow` header of a 405.
    pub fn allow_header(self) -> &'static str {
        match self {
            Methods::GetHead => "GET, HEAD",
            Methods::GetPost => "GET, POST",
            Methods::GetHeadPost => "GET, HEAD, POST",
        }
    }
}

/// How a path is matched.
#[derive(Debug, Clone, Copy)]
enum Path {
    /// `prefix` + token + `suffix`.
    Token {
        prefix: &'static str,
        suffix: &'static str,
        kind: TokenType,
    },
    Exact(&'static str),
}

/// The public routes.
const TABLE: [(Path, Route, Methods); 7] = [
    (
        Path::Token {
            prefix: "/o/",
            suffix: ".gif",
            kind: TokenType::Open,
        },
        Route::Open,
        Methods::GetHead,
    ),
    (
        Path::Token {
            prefix: "/c/",
            suffix: "",
            kind: TokenType::Click,
        },
        Route::Click,
        Methods::GetHead,
    ),
    (
        Path::Token {
            prefix: "/u/",
            suffix: "",
            kind: TokenType::Unsubscribe,
        },
        Route::Unsubscribe,
        Methods::GetPost,
    ),
    // POST is what navigator.sendBeacon sends.
    (Path::Exact("/p.gif"), Route::Beacon, Methods::GetHeadPost),
    (Path::Exact("/optout"), Route::OptOut, Methods::GetHead),
    (Path::Exact("/optin"), Route::OptIn, Methods::GetHead),
    (Path::Exact("/robots.txt"), Route::Robots, Methods::GetHead),
];

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched<'a> {
    pub route: Route,
    /// The token of a tokened route; empty otherwise.
    pub token: &'a str,
    /// Whether the route answers the request's method; if not, the 405's
    /// `Allow` header.
    pub allowed: Result<(), &'static str>,
}

/// Routes a request by method and path.
pub fn route<'a>(method: &Method, path: &'a str) -> Matched<'a> {
    for (p, route, methods) in TABLE {
        let token = match p {
            Path::Token { prefix, suffix, .. } => {
                match path
                    .strip_prefix(prefix)
                    .and_then(|t| t.strip_suffix(suffix))
                {
                    Some(t) => t,
                    None => continue,
                }
            }
            Path::Exact(p) if p == path => "",
            Path::Exact(_) => continue,
        };
        let allowed = if methods.allows(method) {
            Ok(())
        } else {
            Err(methods.allow_header())
        };
        return Matched {
            route,
            token,
            allowed,
        };
    }
    Matched {
        route: Route::NotFound,
        token: "",
        allowed: Ok(()),
    }
}

/// The public URL carrying `token` of type `kind`, on `base` (`server.public_url`).
pub fn token_url(base: &str, kind: TokenType, token: &str) -> String {
    let base = base.trim_end_matches('/');
    for (p, ..) in TABLE {
        if let Path::Token {
            prefix,
            suffix,
            kind: k,
        } = p
        {
            if k == kind {
                return format!("{base}{prefix}{token}{suffix}");
            }
        }
    }
    unreachable!("every token type has a route")
}

/// The token in a tracked URL (or the input itself, when it is no URL) and
/// the type its route takes.
pub fn token_in(input: &str) -> (&str, Option<TokenType>) {
    let input = input.trim();
    let path = match input.find("://") {
        Some(i) => {
            let rest = &input[i + 3..];
            let path = rest.find('/').map_or("", |j| &rest[j..]);
            path.split(['?', '#']).next().unwrap_or("")
        }
        None => input,
    };
    for (p, ..) in TABLE {
        if let Path::Token {
            prefix,
            suffix,
            kind,
        } = p
        {
            if let Some(t) = path.strip_prefix(prefix) {
                return (t.strip_suffix(suffix).unwrap_or(t), Some(kind));
            }
        }
    }
    (path, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_path_then_method() {
        let m = route(&Method::GET, "/o/abc.def.gif");
        assert_eq!(
            (m.route, m.token, m.allowed),
            (Route::Open, "abc.def", Ok(()))
        );
        assert_eq!(route(&Method::GET, "/o/abc").route, Route::NotFound);
        assert_eq!(
            route(&Method::POST, "/c/x").allowed,
            Err("GET, HEAD"),
            "a bad method on a known path is a 405"
        );
        assert_eq!(route(&Method::POST, "/u/x").allowed, Ok(()));
        assert_eq!(route(&Method::GET, "/optin").route, Route::OptIn);
        assert_eq!(Route::OptIn.label(), "optout");
        assert_eq!(route(&Method::GET, "/nope").route, Route::NotFound);
    }

    #[test]
    fn urls_round_trip() {
        for kind in [TokenType::Open, TokenType::Click, TokenType::Unsubscribe] {
            let url = token_url("https://t.example.com/", kind, "abc.def");
            assert_eq!(token_in(&url), ("abc.def", Some(kind)), "{url}");
            let path = url.strip_prefix("https://t.example.com").unwrap();
            let m = route(&Method::GET, path);
            assert_eq!(m.token, "abc.def");
        }
        assert_eq!(
            token_url("http://h:8080", TokenType::Open, "t"),
            "http://h:8080/o/t.gif"
        );
        assert_eq!(
            token_in("https://h/c/abc.def?x=1"),
            ("abc.def", Some(TokenType::Click))
        );
        assert_eq!(token_in("abc.def"), ("abc.def", None));
    }
}
