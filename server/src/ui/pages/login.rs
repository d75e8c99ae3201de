//! `/ui/login` and `/ui/logout`: a token pasted once becomes the session
//! cookie (see [`crate::ui::session`]).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::http::AppState;
use crate::ui::layout::{self, Nav};
use crate::ui::session::{
    self, CSRF_FIELD, Form, LOGIN_COOKIE, SESSION_COOKIE, SESSION_SECONDS, Viewer, cookie,
    cookie_safe, set_cookie,
};
use crate::ui::{UiError, UiQuery, UiResult};

/// Where to go after logging in: only a page of the UI (an open redirect
/// elsewhere would let a link send people to another site).
fn next_page(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/ui/login")
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => "/ui/models".to_string(),
    }
}

fn login_page(auth_disabled: bool, nonce: &str, next: &str, error: Option<&str>) -> Markup {
    layout::page(
        "Sign in",
        None,
        Nav::None,
        html! {
            h1 { "Sign in to modelwatch" }
            (layout::inline_error(error))
            form.login method="post" action="/ui/login" {
                input type="hidden" name=(CSRF_FIELD) value=(nonce);
                input type="hidden" name="next" value=(next);
                @if auth_disabled {
                    p { "Authentication is off on this daemon (" code { "--no-auth" } "): everyone is admin." }
                } @else {
                    label for="token" { "API token" }
                    input #token type="password" name="token" autocomplete="off" required;
                    p.hint { "A token from " code { "modelwatch token create --name NAME --role reader" } ", or your identity provider's JWT when the daemon accepts them (OIDC). It is kept in an HttpOnly cookie for this browser session, never in the page." }
                }
                button type="submit" #sign-in { "Sign in" }
            }
        },
    )
}

/// A fresh double-submit nonce for the login form.
fn nonce() -> String {
    // ThreadRng is a CSPRNG.
    format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

pub async fn form(State(s): State<AppState>, UiQuery(q): UiQuery) -> Response {
    let nonce = nonce();
    let next = next_page(q.get("next"));
    (
        [(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &nonce, 600))],
        login_page(s.auth.disabled(), &nonce, &next, None),
    )
        .into_response()
}

pub async fn submit(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> UiResult<Response> {
    let form = Form::parse(&body);
    let next = next_page(form.get("next"));
    let expected = cookie(&headers, LOGIN_COOKIE);
    let sent = form.get(CSRF_FIELD);
    if session::login_cross_origin(&headers) || expected.is_none() || expected != sent {
        return Err(UiError::forbidden(
            "the sign-in form expired or came from another site; open /ui/login and sign in again",
        ));
    }
    let retry = |message: &str| {
        let nonce = nonce();
        (
            StatusCode::UNAUTHORIZED,
            [(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &nonce, 600))],
            login_page(s.auth.disabled(), &nonce, &next, Some(message)),
        )
            .into_response()
    };
    let token = if s.auth.disabled() {
        // No token to keep: the session cookie only keys the CSRF tokens.
        nonce()
    } else {
        let token = form.text("token");
        if !cookie_safe(&token) {
            s.auth
                .refused(crate::auth::Via::Ui, "malformed token", None);
            return Ok(retry(
                "That is not a modelwatch token: paste the secret `modelwatch token create` printed once.",
            ));
        }
        match s
            .auth
            .authenticate(Some(&token), crate::auth::Via::Ui)
            .await
        {
            Ok(actor) => tracing::info!(actor = %actor.name, "UI sign-in"),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                return Ok(retry("Unknown, revoked or expired token."));
            }
            Err(e) => return Err(e.into()),
        }
        token
    };
    let mut response = Redirect::to(&next).into_response();
    let h = response.headers_mut();
    for cookie in [
        set_cookie(SESSION_COOKIE, &token, SESSION_SECONDS),
        set_cookie(LOGIN_COOKIE, "", 0),
    ] {
        h.append(
            header::SET_COOKIE,
            cookie
                .parse()
                .map_err(|_| UiError::bad_request("invalid token"))?,
        );
    }
    Ok(response)
}

pub async fn logout(viewer: Viewer, body: Bytes) -> UiResult<Response> {
    viewer.form(&body)?;
    Ok((
        [(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0))],
        Redirect::to("/ui/login"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::next_page;

    #[test]
    fn only_ui_pages_are_followed_after_login() {
        assert_eq!(next_page(Some("/ui/audit?actor=x")), "/ui/audit?actor=x");
        for bad in [
            None,
            Some("https://evil.example/"),
            Some("//evil.example/ui/"),
            Some("/ui/login"),
            Some("/api/v1/models"),
            Some("/ui/\\evil"),
        ] {
            assert_eq!(next_page(bad), "/ui/models", "{bad:?}");
        }
    }
}
