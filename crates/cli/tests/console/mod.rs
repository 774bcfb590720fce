//! The admin console end to end, on SQLite and PostgreSQL: signing in through
//! Usher's own OpenID Connect flow (and being refused without the role), CSRF,
//! deciding held sign-ups, finding and changing users, the connectors' health and
//! call records, `usher admin grant|revoke`, and one administrator's session in a
//! real headless Chromium.
//!
//! (A directory module, like `admin_api`, so Cargo does not also build it as a test
//! binary of its own.)

use reqwest::StatusCode;
use usher_domain::{attribute::AttributeValue, Identity, NewUser, SignInType, SignUpRequestStatus};

use crate::harness::{self, *};
use crate::{both, paste_tests};

const PASSWORD: &str = "a long enough pass phrase";

/// A user flow whose sign-ups wait for approval, and its application.
const APPROVAL: &str = r#"
[[user_flows]]
id = "B2X_1_approval"
identity_providers = ["EmailPassword-OAUTH"]
requires_approval = true
[[user_flows.attributes]]
id = "displayName"
required = true

[[applications]]
client_id = "approval-app"
name = "Approval app"
redirect_uris = ["http://127.0.0.1:9/callback"]
type = "public"
user_flow = "B2X_1_approval"
"#;

/// Signs a user up through the e2e application; returns their id.
async fn sign_up(env: &TestEnv, usher: &Instance, email: &str, name: &str) -> String {
    Browser::new()
        .sign_up(
            usher,
            &usher.authorize_url(PUBLIC_CLIENT, &[]),
            email,
            PASSWORD,
            &[("displayName", name)],
        )
        .await;
    env.store().await.users_by_email(email).await.unwrap()[0]
        .id
        .clone()
}

/// `usher --config <the instance's file> admin <args…>`.
fn usher_admin(usher: &Instance, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .arg("--config")
        .arg(&usher.config_path)
        .arg("admin")
        .args(args)
        .env("USHER_MASTER_KEY", MASTER_KEY)
        .env("E2E_SECRET", CONFIDENTIAL_SECRET)
        .env("USHER_LOG", "warn")
        .output()
        .unwrap()
}

fn grant(usher: &Instance, email: &str) {
    let out = usher_admin(usher, &["grant", email]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("now has the role Usher.Admin"));
}

/// The console's sign-in in a browser without JavaScript, through Usher's sign-in
/// page: `/console` → `/console/login` → `/authorize` → the flow → back to
/// `/console/callback`, whose answer is returned.
async fn console_callback(usher: &Instance, b: &Browser, email: &str) -> Page {
    let r = b.get(&usher.url("/console")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        r.location().starts_with("/console/login?next="),
        "{}",
        r.location()
    );
    let r = b.get(&usher.url(r.location())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let authorize = r.location().to_owned();
    assert!(authorize.starts_with("/authorize?"), "{authorize}");
    let q = query(&authorize);
    assert_eq!(q["client_id"], "usher-console");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/console/callback", usher.issuer)
    );
    let login_cookie = set_cookie(&r, "usher_console_login");
    assert!(login_cookie.contains("HttpOnly"), "{login_cookie}");
    assert!(login_cookie.contains("Path=/console"), "{login_cookie}");
    // The console's sign-in page offers no sign-up (an application's page, on the same
    // user flow, does).
    let r = b.get(&usher.url(&authorize)).await;
    let page = b.get(&usher.url(r.location())).await;
    assert!(page.body.contains("/sign-in\""), "{}", page.body);
    // It names the application the person signs in to, in its title and under its
    // heading.
    assert!(
        page.body.contains("<title>Sign in – Usher console</title>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("to continue to Usher console"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("/sign-up\""), "{}", page.body);
    let callback = b.sign_in(&usher.url(&authorize), email, PASSWORD).await;
    assert!(
        callback.starts_with(&format!("{}/console/callback?", usher.issuer)),
        "{callback}"
    );
    b.get(&callback).await
}

/// Signs an administrator in to the console; returns the browser holding the session.
async fn console_sign_in(usher: &Instance, email: &str) -> Browser {
    let b = Browser::new();
    let r = console_callback(usher, &b, email).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The page moves on by itself (and says where to).
    assert!(r.body.contains("http-equiv=\"refresh\""), "{}", r.body);
    let session = set_cookie(&r, "usher_console");
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(session.contains(part), "{part} in {session}");
    }
    assert!(
        !session.contains("Secure"),
        "no Secure over http: {session}"
    );
    b
}

fn set_cookie(page: &Page, name: &str) -> String {
    page.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", page.headers))
        .to_owned()
}

/// The page's form CSRF token (the sign-out form is on every signed-in page).
fn csrf(page: &Page) -> String {
    page.csrf()
}

/// A sign-up at the approval application that ends held; returns the answer.
async fn held_sign_up(usher: &Instance, email: &str, name: &str) -> Page {
    let b = Browser::new();
    let flow = b
        .to_attribute_page(usher, "approval-app", email, PASSWORD)
        .await;
    let page = b.get(&usher.url(&flow)).await;
    let r = b
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &page,
            &[("displayName", name)],
        )
        .await;
    assert!(r.body.contains("waiting for approval"), "{}", r.body);
    r
}

both!(the_console_requires_an_administrator_signed_in_through_usher);
async fn the_console_requires_an_administrator_signed_in_through_usher(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start().await;

    // Nobody signed in: to the sign-in, remembering where they were going.
    let anonymous = Browser::new();
    for (path, next) in [
        ("/console", "%2Fconsole"),
        ("/console/users?search=a", "%2Fconsole%2Fusers%3Fsearch%3Da"),
        ("/console/requests", "%2Fconsole%2Frequests"),
        ("/console/connectors", "%2Fconsole%2Fconnectors"),
        ("/console/flows", "%2Fconsole%2Fflows"),
    ] {
        let r = anonymous.get(&usher.url(path)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            r.location(),
            format!("/console/login?next={next}"),
            "{path}"
        );
    }
    // A post without a session changes nothing.
    let r = anonymous
        .post(&usher.url("/console/users/x/delete"), &[("csrf", "x")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/console/login"));
    // A forged callback is refused.
    let r = anonymous
        .get(&usher.url("/console/callback?code=x&state=forged"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Someone who is not an administrator: a clear 403 after a real sign-in.
    sign_up(&env, &usher, "admin@example.com", "Ada Admin").await;
    let b = Browser::new();
    let r = console_callback(&usher, &b, "admin@example.com").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body.contains("This account is not an administrator"),
        "{}",
        r.body
    );
    assert!(r.body.contains("prompt=login"), "a way to switch account");
    let r = b.get(&usher.url("/console")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "no session was made");

    // `usher admin grant` needs a known email, then makes an administrator.
    let out = usher_admin(&usher, &["grant", "nobody@example.com"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no user has the email address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    grant(&usher, "Admin@Example.com");
    let admin = console_sign_in(&usher, "admin@example.com").await;
    let r = admin.get(&usher.url("/console")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Signed in as Ada Admin"), "{}", r.body);
    assert!(r.body.contains("id=\"user-count\">1<"), "{}", r.body);
    assert_eq!(
        r.headers.get("cache-control").unwrap(),
        "no-store",
        "console pages are never cached"
    );
    assert!(r.headers.get("content-security-policy").is_some());
    // Localised like the sign-up pages.
    let nb = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(usher.url("/console/signed-out"))
        .header("accept-language", "nb-NO")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(nb.contains("Du er logget ut"), "{nb}");

    // A revoked role ends the console session (and every other session of the
    // account) at once: the next click is a sign-in, which then refuses the account.
    let out = usher_admin(&usher, &["revoke", "admin@example.com"]);
    assert!(out.status.success());
    let r = admin.get(&usher.url("/console/users")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = admin.get(&usher.url("/console")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = console_callback(&usher, &admin, "admin@example.com").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("This account is not an administrator"));

    // Signing out ends the console session and this browser's single sign-on.
    grant(&usher, "admin@example.com");
    let admin = console_sign_in(&usher, "admin@example.com").await;
    let page = admin.get(&usher.url("/console")).await;
    let r = admin
        .post(&usher.url("/console/logout"), &[("csrf", "forged")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "CSRF");
    let r = admin
        .post(&usher.url("/console/logout"), &[("csrf", &csrf(&page))])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/console/signed-out");
    let r = admin.get(&usher.url("/console")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "signed out");
    let r = admin.get(&usher.url(r.location())).await;
    let r = admin.get(&usher.url(r.location())).await;
    assert!(
        r.location().starts_with("/flow/"),
        "the next sign-in asks for the password again: {}",
        r.location()
    );
    env.finish(usher).await;
}

both!(sign_ups_are_approved_and_denied_from_the_requests_page);
async fn sign_ups_are_approved_and_denied_from_the_requests_page(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(APPROVAL).await;
    let admin_id = sign_up(&env, &usher, "admin@example.com", "Ada Admin").await;
    grant(&usher, "admin@example.com");
    let admin = console_sign_in(&usher, "admin@example.com").await;
    held_sign_up(&usher, "wait@example.com", "Waiting <Person>").await;
    held_sign_up(&usher, "no@example.com", "Not Welcome").await;

    let r = admin.get(&usher.url("/console")).await;
    assert!(r.body.contains("id=\"pending-count\">2<"), "{}", r.body);
    let page = admin.get(&usher.url("/console/requests")).await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "wait@example.com",
        "no@example.com",
        // Attributes, escaped.
        "Waiting &lt;Person&gt;",
        "B2X_1_approval",
        "emailAddress: wait@example.com",
    ] {
        assert!(page.body.contains(text), "{text} in {}", page.body);
    }
    let store = env.store().await;
    let pending = store
        .sign_up_requests(Some(SignUpRequestStatus::Pending), None, 10)
        .await
        .unwrap();
    let id_of = |email: &str| {
        pending
            .iter()
            .find(|r| r.email == email)
            .unwrap()
            .id
            .clone()
    };
    let (wait, no) = (id_of("wait@example.com"), id_of("no@example.com"));
    assert!(page
        .body
        .contains(&format!("/console/requests/{wait}/approve").replace('/', "&#x2f;")));

    // Without the page's token nothing is decided.
    let r = admin
        .post(
            &usher.url(&format!("/console/requests/{wait}/approve")),
            &[("csrf", "not-the-token")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("nothing was changed"), "{}", r.body);
    let r = admin
        .post(
            &usher.url(&format!("/console/requests/{wait}/approve")),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(store
        .users_by_email("wait@example.com")
        .await
        .unwrap()
        .is_empty());

    // Approve: the user exists, is emailed, and the decision names the administrator.
    let r = admin
        .submit(
            &usher.url(&format!("/console/requests/{wait}/approve")),
            &page,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/console/requests?done=approved");
    let r = admin.get(&usher.url(r.location())).await;
    assert!(r.body.contains("The sign-up was approved"), "{}", r.body);
    assert!(
        r.body.contains("Ada Admin (admin@example.com)"),
        "{}",
        r.body
    );
    let users = store.users_by_email("wait@example.com").await.unwrap();
    assert_eq!(users.len(), 1);
    assert!(env.last_mail_to("wait@example.com").contains("approved"));
    let decided = store.sign_up_request(&wait).await.unwrap().unwrap();
    assert_eq!(decided.status, SignUpRequestStatus::Approved);
    assert_eq!(decided.decided_by.as_deref(), Some(admin_id.as_str()));
    // Deciding again says why nothing happened.
    let r = admin
        .submit(
            &usher.url(&format!("/console/requests/{wait}/deny")),
            &page,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        error_summary(&r.body).contains("already been decided"),
        "{}",
        r.body
    );

    // Deny — after a confirmation that asks for an optional reason — then clear the
    // denial.
    let queue = admin.get(&usher.url("/console/requests")).await;
    assert!(
        queue.body.contains(&format!(
            "method=\"get\" action=\"&#x2f;console&#x2f;requests&#x2f;{no}&#x2f;deny\""
        )),
        "{}",
        queue.body
    );
    let confirm = admin
        .get(&usher.url(&format!("/console/requests/{no}/deny")))
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(confirm.body.contains("no@example.com"), "{}", confirm.body);
    assert!(confirm.body.contains("name=\"reason\""), "{}", confirm.body);
    let r = admin
        .submit(
            &usher.url(&format!("/console/requests/{no}/deny")),
            &confirm,
            &[("reason", "We only open accounts for customers.")],
        )
        .await;
    assert_eq!(r.location(), "/console/requests?done=denied");
    let mail = env.last_mail_to("no@example.com");
    assert!(mail.contains("not approved"), "{mail}");
    assert!(
        mail.contains("We only open accounts for customers."),
        "{mail}"
    );
    // A decided request has no confirmation page.
    let r = admin
        .get(&usher.url(&format!("/console/requests/{no}/deny")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let page = admin.get(&usher.url("/console/requests")).await;
    assert!(
        page.body.contains("No sign-ups are waiting"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("data-status=\"denied\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("Clear the denial"));
    let r = admin
        .submit(
            &usher.url(&format!("/console/requests/{no}/clear")),
            &page,
            &[],
        )
        .await;
    assert_eq!(r.location(), "/console/requests?done=cleared");
    assert!(store.sign_up_request(&no).await.unwrap().is_none());
    let r = admin
        .submit(
            &usher.url(&format!("/console/requests/{no}/clear")),
            &page,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The flows page says this flow holds sign-ups.
    let r = admin.get(&usher.url("/console/flows")).await;
    assert!(r.body.contains("id=\"flow-B2X_1_approval\""), "{}", r.body);
    assert!(r.body.contains("data-approval=\"true\""), "{}", r.body);
    env.finish(usher).await;
}

both!(users_are_found_disabled_and_deleted);
async fn users_are_found_disabled_and_deleted(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start().await;
    sign_up(&env, &usher, "admin@example.com", "Ada Admin").await;
    let ann = sign_up(&env, &usher, "ann@example.com", "Ann Example").await;
    grant(&usher, "admin@example.com");
    let admin = console_sign_in(&usher, "admin@example.com").await;
    // Enough users for two pages, straight into the store.
    let store = env.store().await;
    for i in 0..30 {
        let email = format!("paged-{i:02}@example.com");
        store
            .create_user(NewUser {
                id: format!("00000000-0000-4000-8000-{i:012}"),
                email: Some(email.clone()),
                attributes: [(
                    "displayName".to_owned(),
                    AttributeValue::String(format!("Paged {i}")),
                )]
                .into(),
                identities: vec![Identity {
                    sign_in_type: SignInType::EmailAddress,
                    issuer: "127.0.0.1".into(),
                    issuer_assigned_id: email,
                    exact_issuer: None,
                }],
                account_enabled: true,
                email_verified: true,
                profile: usher_domain::UserProfile::default(),
                password_hash: None,
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }

    // Search, a page at a time.
    let r = admin.get(&usher.url("/console/users?search=PAGED")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.matches("data-email=\"paged-").count(), 25);
    let next = r
        .body
        .split("id=\"next-page\"")
        .next()
        .and_then(|b| b.rsplit("href=\"").next())
        .map(|h| unescape(h.split('"').next().unwrap()))
        .unwrap();
    assert!(
        next.contains("search=PAGED") && next.contains("after="),
        "{next}"
    );
    let r = admin.get(&usher.url(&next)).await;
    assert_eq!(r.body.matches("data-email=\"paged-").count(), 5);
    assert!(!r.body.contains("id=\"next-page\""));
    assert!(r.body.contains("First page"));
    let r = admin.get(&usher.url("/console/users?search=ann")).await;
    assert_eq!(r.body.matches("<tr data-email=").count(), 1, "{}", r.body);
    assert!(r.body.contains("data-email=\"ann@example.com\""));
    let r = admin.get(&usher.url("/console/users?search=zzz")).await;
    assert!(r.body.contains("No user matches this search"));
    // A search too long: the error is on the field and in the summary.
    let long = "x".repeat(101);
    let r = admin
        .get(&usher.url(&format!("/console/users?search={long}")))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_field_error(&r.body, "search");

    // One user: attributes, identities; disable and enable.
    let page = admin
        .get(&usher.url(&format!("/console/users/{ann}")))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Ann Example"));
    assert!(page.body.contains("emailAddress"));
    assert!(page.body.contains("data-enabled=\"true\""));
    let enabled = format!("/console/users/{ann}/enabled");
    let r = admin
        .post(
            &usher.url(&enabled),
            &[("csrf", "forged"), ("enabled", "false")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "CSRF");
    assert!(
        store
            .user_by_id(&ann)
            .await
            .unwrap()
            .unwrap()
            .account_enabled
    );
    let r = admin
        .submit(&usher.url(&enabled), &page, &[("enabled", "false")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        !store
            .user_by_id(&ann)
            .await
            .unwrap()
            .unwrap()
            .account_enabled
    );
    let r = admin.get(&usher.url(r.location())).await;
    assert!(r.body.contains("The account is disabled"), "{}", r.body);
    assert!(r.body.contains("data-enabled=\"false\""));
    let r = admin
        .submit(&usher.url(&enabled), &page, &[("enabled", "true")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        store
            .user_by_id(&ann)
            .await
            .unwrap()
            .unwrap()
            .account_enabled
    );

    // Not one's own account.
    let me = store.users_by_email("admin@example.com").await.unwrap()[0]
        .id
        .clone();
    let r = admin
        .submit(
            &usher.url(&format!("/console/users/{me}/enabled")),
            &page,
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(error_summary(&r.body).contains("your own account"));

    // Delete, after a confirmation page.
    let confirm = admin
        .get(&usher.url(&format!("/console/users/{ann}/delete")))
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm
            .body
            .contains("Do you want to delete Ann Example (ann@example.com)?"),
        "{}",
        confirm.body
    );
    let r = admin
        .post(
            &usher.url(&format!("/console/users/{ann}/delete")),
            &[("csrf", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "CSRF");
    assert!(store.user_by_id(&ann).await.unwrap().is_some());
    let r = admin
        .submit(
            &usher.url(&format!("/console/users/{ann}/delete")),
            &confirm,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/console/users?done=deleted");
    assert!(store.user_by_id(&ann).await.unwrap().is_none());
    let r = admin
        .get(&usher.url(&format!("/console/users/{ann}")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    env.finish(usher).await;
}

both!(an_administrator_sends_a_reset_link_and_sees_the_self_service);
async fn an_administrator_sends_a_reset_link_and_sees_the_self_service(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start().await;
    sign_up(&env, &usher, "admin@example.com", "Ada Admin").await;
    let ann = sign_up(&env, &usher, "ann@example.com", "Ann Example").await;
    grant(&usher, "admin@example.com");
    let admin = console_sign_in(&usher, "admin@example.com").await;
    let page = admin
        .get(&usher.url(&format!("/console/users/{ann}")))
        .await;
    assert!(page.body.contains("id=\"reset-link\""), "{}", page.body);
    assert!(page.body.contains("Nothing yet."), "{}", page.body);
    let r = admin
        .post(
            &usher.url(&format!("/console/users/{ann}/reset-link")),
            &[("csrf", &csrf(&page)), ("client_id", PUBLIC_CLIENT)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mail = env.last_mail_to("ann@example.com");
    assert!(mail.contains("Reset your password for"), "{mail}");
    let link = unescape_quoted_printable(&mail)
        .split_whitespace()
        .find(|w| w.contains("/reset?token="))
        .unwrap_or_else(|| panic!("no link in {mail}"))
        .to_owned();
    assert!(
        link.starts_with(&format!("{}/reset?token=", usher.issuer)),
        "{link}"
    );

    // The link opens the new-password page; the reset signs nobody in.
    env.clock.advance(chrono::Duration::minutes(2));
    let person = Browser::new();
    // The link's page starts nothing by itself (a mail scanner may follow it); its
    // button does.
    let r = person.get(&link).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("action=\"/reset\""), "{}", r.body);
    let token = link.split("token=").nth(1).unwrap();
    let r = person.post(&usher.url("/reset"), &[("token", token)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let flow = r.location().to_owned();
    let page = person.get(&usher.url(&flow)).await;
    assert!(
        page.body.contains("name=\"confirmPassword\""),
        "{}",
        page.body
    );
    assert!(!page.body.contains("name=\"currentPassword\""));
    let r = person
        .submit(
            &usher.url(&format!("{flow}/new-password")),
            &page,
            &[
                ("password", "a reset pass phrase"),
                ("confirmPassword", "a reset pass phrase"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Your password is changed"), "{}", r.body);
    assert!(r.headers.get("set-cookie").is_none(), "no session");
    let r = Browser::new()
        .try_sign_in_to(
            &usher,
            PUBLIC_CLIENT,
            "ann@example.com",
            "a reset pass phrase",
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // The link works once; a forged one not at all.
    let again = Browser::new()
        .post(&usher.url("/reset"), &[("token", token)])
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    let again = Browser::new().get(&link).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert!(
        again.body.contains("does not work any more"),
        "{}",
        again.body
    );
    let forged = Browser::new().get(&format!("{link}x")).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    // A garbled link is the same page, not an error of the framework.
    for garbled in ["/reset?token=%ZZ", "/reset?token", "/reset"] {
        let r = Browser::new().get(&usher.url(garbled)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{garbled}");
        assert!(r.body.contains("does not work any more"), "{}", r.body);
    }
    let r = Browser::new()
        .post_raw(&usher.url("/reset"), b"\xff\xfe=%".to_vec())
        .await;
    assert!(r.body.contains("does not work any more"), "{}", r.body);

    // The console shows what happened, newest first.
    let page = admin
        .get(&usher.url(&format!("/console/users/{ann}")))
        .await;
    let events = page.body.split("id=\"events\"").nth(1).unwrap_or_default();
    let reset = events
        .find("Reset a forgotten password")
        .expect("the reset");
    let sent = events
        .find("Was sent a password reset link")
        .expect("the link");
    assert!(reset < sent, "{events}");

    // A user without a password gets no form.
    let store = env.store().await;
    store
        .create_user(NewUser {
            id: "00000000-0000-4000-8000-00000000fede".into(),
            email: Some("fed@example.com".into()),
            attributes: usher_domain::AttributeValues::new(),
            identities: vec![Identity {
                sign_in_type: SignInType::Federated,
                issuer: "facebook.com".into(),
                issuer_assigned_id: "1".into(),
                exact_issuer: None,
            }],
            account_enabled: true,
            email_verified: true,
            profile: usher_domain::UserProfile::default(),
            password_hash: None,
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let page = admin
        .get(&usher.url("/console/users/00000000-0000-4000-8000-00000000fede"))
        .await;
    assert!(!page.body.contains("id=\"reset-link\""));
    assert!(page.body.contains("no password to reset"), "{}", page.body);
    env.finish(usher).await;
}

/// A quoted-printable mail body with its soft line breaks joined and `=3D` decoded.
fn unescape_quoted_printable(mail: &str) -> String {
    mail.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

both!(connector_health_and_call_records);
async fn connector_health_and_call_records(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![]).await;
    let usher = env
        .start_with(&format!(
            r#"
[connector_settings]
allow_insecure_targets = true
record_bodies = true

[[connectors]]
id = "e2e-connector"
display_name = "Loyalty check"
target_url = "{url}"
retries = 0
timeout_ms = 3000
budget_ms = 3000
[connectors.authentication]
type = "basic"
username = "usher"
password = {{ value = "console-basic-secret-1234" }}

[user_flows.connectors]
post_attribute_collection = ["e2e-connector"]
"#,
            url = api.url
        ))
        .await;
    // Two sign-ups call the connector (and continue).
    sign_up(&env, &usher, "admin@example.com", "Ada Admin").await;
    sign_up(&env, &usher, "other@example.com", "Other").await;
    assert_eq!(api.bodies().len(), 2);
    // And one failed call on record.
    let store = env.store().await;
    store
        .insert_connector_call(&usher_storage::ConnectorCallRecord {
            call_id: "failed-call-1".into(),
            connector_id: "e2e-connector".into(),
            user_flow_id: "B2X_1_e2e".into(),
            step: "PostAttributeCollection".into(),
            flow_id: "f-1".into(),
            attempts: 1,
            http_status: None,
            latency_ms: 2500,
            outcome: "failed".into(),
            failure_reason: Some("timeout".into()),
            error_code: Some(1_003_005),
            warnings: vec!["missing version".into()],
            request_body: None,
            response_body: None,
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    grant(&usher, "admin@example.com");
    let admin = console_sign_in(&usher, "admin@example.com").await;

    let r = admin.get(&usher.url("/console")).await;
    assert!(r.body.contains("data-breaker=\"closed\""), "{}", r.body);
    let r = admin.get(&usher.url("/console/connectors")).await;
    assert_eq!(r.status, StatusCode::OK);
    let row = r
        .body
        .split("data-connector=\"e2e-connector\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", r.body));
    assert!(row.contains("Loyalty check"));
    assert!(row.contains("HTTP Basic"));
    assert!(row.contains("data-breaker=\"closed\""));
    assert!(row.contains("data-health=\"calls\">3<"), "{row}");
    assert!(
        row.contains("data-health=\"failure_rate\">33.3 %<"),
        "{row}"
    );
    // Nearest rank: of three calls, p99 is the slowest.
    assert!(row.contains("data-health=\"p99\">2500 ms<"), "{row}");
    assert!(
        !r.body.contains("console-basic-secret-1234"),
        "never a secret"
    );

    let page = admin
        .get(&usher.url("/console/connectors/e2e-connector"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("console-basic-secret-1234"));
    assert_eq!(page.body.matches("<tr data-call=").count(), 3);
    assert!(page.body.contains("data-outcome=\"failed\""));
    assert!(page.body.contains("B2X_1_e2e: postAttributeCollection"));
    let real = store
        .connector_calls(&usher_storage::CallFilter {
            connector_id: Some("e2e-connector".into()),
            outcome: Some("continue".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0);
    assert!(page
        .body
        .contains(&format!("/console/calls/{}", real.call_id).replace('/', "&#x2f;")));

    // One call in full: what was sent (no password), what came back.
    let r = admin
        .get(&usher.url(&format!("/console/calls/{}", real.call_id)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for part in [
        "data-field=\"step\">PostAttributeCollection<",
        "data-field=\"user_flow\">B2X_1_e2e<",
        "data-field=\"attempts\">1<",
        "data-field=\"http_status\">200<",
        "data-field=\"outcome\">continue<",
        "id=\"request-body\"",
        // One of the two sign-ups (the test clock stands still, so either is newest).
        "@example.com",
        "&quot;action&quot;: &quot;Continue&quot;",
        "id=\"response-body\"",
    ] {
        assert!(r.body.contains(part), "{part} in {}", r.body);
    }
    assert!(!r.body.contains(PASSWORD));
    let r = admin.get(&usher.url("/console/calls/failed-call-1")).await;
    assert!(r.body.contains("data-field=\"failure_reason\">timeout<"));
    assert!(
        r.body.contains("data-field=\"error_code\">1003005<"),
        "the extension's Entra error code is shown"
    );
    assert!(r.body.contains("missing version"));
    assert!(r.body.contains("Not recorded"));
    let r = admin.get(&usher.url("/console/calls/no-such-call")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The overview's box finds a call by the reference a person reads out, typed
    // with stray spaces; a reference no call has says where to look instead.
    let overview = admin.get(&usher.url("/console")).await;
    assert!(
        overview.body.contains("action=\"/console/calls\""),
        "{}",
        overview.body
    );
    let r = admin
        .get(&usher.url(&format!("/console/calls?reference=+{}+", real.call_id)))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), format!("/console/calls/{}", real.call_id));
    let r = admin
        .get(&usher.url("/console/calls?reference=0f6a3c2e-unknown"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("the log line"), "{}", r.body);
    let r = admin.get(&usher.url("/console/calls?reference=")).await;
    assert_eq!(r.location(), "/console");
    let r = admin.get(&usher.url("/console/connectors/nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The flows page links the connector at its step.
    let r = admin.get(&usher.url("/console/flows")).await;
    assert!(r.body.contains("id=\"flow-B2X_1_e2e\""));
    assert!(r.body.contains(">e2e-connector</a>"));
    env.finish(usher).await;
}

both!(breaker_state_on_metrics_and_refused_calls_out_of_the_latencies);
async fn breaker_state_on_metrics_and_refused_calls_out_of_the_latencies(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![(500, serde_json::json!({}))]).await;
    let usher = env
        .start_with(&format!(
            r#"
[connector_settings]
allow_http_targets = true
allow_loopback_targets = true

[[connectors]]
id = "e2e-connector"
target_url = "{url}"
retries = 0
failure_policy = "continue"
[connectors.breaker]
failure_threshold = 1
open_seconds = 3600

[[connectors]]
id = "other"
target_url = "{url}"

[[applications]]
client_id = "admin-all"
name = "Admin"
type = "confidential"
client_secret_env = "E2E_SECRET"
user_flow = "B2X_1_e2e"
roles = ["APIConnectors.ReadWrite.All"]

[user_flows.connectors]
post_attribute_collection = ["e2e-connector"]
"#,
            url = api.url
        ))
        .await;
    let metrics = || async {
        let r = reqwest::get(usher.url("/metrics")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    };
    let text = metrics().await;
    assert!(
        text.contains("# TYPE usher_connector_breaker_state gauge"),
        "{text}"
    );
    assert!(
        text.contains("usher_connector_breaker_state{connector=\"e2e-connector\"} 0\n"),
        "closed before any call: {text}"
    );
    // The first sign-up's call fails and opens the breaker; the next two are refused
    // without a call (the policy lets the sign-ups go on).
    sign_up(&env, &usher, "admin@example.com", "Ada Admin").await;
    sign_up(&env, &usher, "two@example.com", "Two").await;
    sign_up(&env, &usher, "three@example.com", "Three").await;
    assert_eq!(api.bodies().len(), 1, "an open breaker makes no call");
    let text = metrics().await;
    assert!(
        text.contains("usher_connector_breaker_state{connector=\"e2e-connector\"} 2\n"),
        "open: {text}"
    );
    // Two slow calls on record.
    let store = env.store().await;
    for (i, latency_ms) in [2500, 3000].into_iter().enumerate() {
        store
            .insert_connector_call(&usher_storage::ConnectorCallRecord {
                call_id: format!("slow-call-{i}"),
                connector_id: "e2e-connector".into(),
                user_flow_id: "B2X_1_e2e".into(),
                step: "PostAttributeCollection".into(),
                flow_id: format!("f-{i}"),
                attempts: 1,
                http_status: None,
                latency_ms,
                outcome: "failed".into(),
                failure_reason: Some("timeout".into()),
                error_code: None,
                warnings: Vec::new(),
                request_body: None,
                response_body: None,
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
    grant(&usher, "admin@example.com");
    let admin = console_sign_in(&usher, "admin@example.com").await;
    // Five calls, all failed, two of them refused by the breaker. Of the three made,
    // the median is the 2500 ms one; counting the refused 0 ms ones, it would be the
    // fast real call.
    let r = admin.get(&usher.url("/console/connectors")).await;
    let row = r
        .body
        .split("data-connector=\"e2e-connector\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", r.body));
    assert!(row.contains("data-breaker=\"open\""), "{row}");
    assert!(row.contains("data-health=\"calls\">5<"), "{row}");
    assert!(
        row.contains("data-health=\"failure_rate\">100.0 %<"),
        "{row}"
    );
    assert!(row.contains("data-health=\"p50\">2500 ms<"), "{row}");
    assert!(row.contains("data-health=\"p99\">3000 ms<"), "{row}");
    let page = admin
        .get(&usher.url("/console/connectors/e2e-connector"))
        .await;
    assert!(
        page.body.contains("data-health=\"refused\">2 "),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("data-health=\"p50\">2500 ms<"),
        "{}",
        page.body
    );
    // An admin edits the other connector: this one's breaker stays open, on every
    // instance that picks the edit up.
    let token = crate::admin_api::client_token(&usher, "admin-all", CONFIDENTIAL_SECRET).await;
    let r = reqwest::Client::new()
        .patch(usher.url("/v1.0/identity/apiConnectors/other"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"displayName": "Other, renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    sign_up(&env, &usher, "four@example.com", "Four").await;
    assert_eq!(api.bodies().len(), 1, "still open after the edit");
    let text = metrics().await;
    assert!(
        text.contains("usher_connector_breaker_state{connector=\"e2e-connector\"} 2\n")
            && text.contains("usher_connector_breaker_state{connector=\"other\"} 0\n"),
        "open after an edit of another connector: {text}"
    );
    env.finish(usher).await;
}

/// An administrator in a real (headless) browser: signs in to the console through
/// Usher's sign-in page, approves a held sign-up, and finds the new user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_approves_a_sign_up_in_the_console() {
    if !harness::webdriver::available() {
        return;
    }
    let env = TestEnv::new(Backend::Sqlite).await;
    let usher = env.start_with(APPROVAL).await;
    sign_up(&env, &usher, "admin@example.com", "Ada Admin").await;
    grant(&usher, "admin@example.com");
    held_sign_up(&usher, "held@example.com", "Held Person").await;

    let browser = harness::webdriver::Driver::start().await;
    let shots = env.dir.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    browser.goto(&usher.url("/console")).await;
    // Usher's own sign-in page, for the console's application.
    browser.wait_for("#password").await;
    assert!(
        browser.url().await.contains("/flow/"),
        "{}",
        browser.url().await
    );
    browser.type_into("#email", "admin@example.com").await;
    browser.type_into("#password", PASSWORD).await;
    browser
        .click("form[action$='/sign-in'] button[type=submit]")
        .await;
    // Back at the console (the callback page moves on by itself).
    browser.wait_for("#pending-count").await;
    assert_eq!(browser.text("#pending-count").await, "1");
    assert!(browser.text("#signed-in-as").await.contains("Ada Admin"));
    browser
        .screenshot(&shots.join("console-overview.png"))
        .await;

    browser.click("nav a[href='/console/requests']").await;
    browser.wait_for(".request").await;
    assert!(browser
        .text(".request h3")
        .await
        .contains("held@example.com"));
    browser
        .screenshot(&shots.join("console-requests.png"))
        .await;
    browser
        .click("li[data-email='held@example.com'] form[action$='/approve'] button")
        .await;
    browser.wait_for("#no-pending").await;
    assert!(browser
        .text(".notice")
        .await
        .contains("The sign-up was approved"));
    // On a phone the queue fits the screen: nothing scrolls sideways.
    held_sign_up(
        &usher,
        "an.unusually.long.address.without.a.break@sign-ups.subdomain.example.com",
        "Someone With A Rather Long Display Name That Goes On",
    )
    .await;
    browser.set_size(375, 800).await;
    browser.goto(&usher.url("/console/requests")).await;
    browser.wait_for(".request").await;
    browser
        .screenshot(&shots.join("console-requests-phone.png"))
        .await;
    assert!(!browser.overflows().await, "{}", browser.source().await);
    browser.set_size(1000, 1200).await;

    browser.click("nav a[href='/console/users']").await;
    browser.wait_for("#users").await;
    assert!(
        browser
            .text("#users tbody")
            .await
            .contains("held@example.com"),
        "{}",
        browser.source().await
    );
    browser.screenshot(&shots.join("console-users.png")).await;
    if let Ok(dir) = std::env::var("USHER_SCREENSHOTS") {
        for f in [
            "console-overview.png",
            "console-requests.png",
            "console-users.png",
        ] {
            let _ = std::fs::copy(shots.join(f), std::path::Path::new(&dir).join(f));
        }
    }
    browser.quit().await;
    env.finish(usher).await;
}
