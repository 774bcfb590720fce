//! The OpenAPI 3 document of the admin API, at `GET /v1.0/$metadata/openapi.json`.
//! Paths, methods, permissions and parameters come from the route table the router is
//! built from ([`super::routes`]); the schemas, which document Graph's properties and
//! Usher's `usher`-prefixed extensions, are written out here.

use axum::{extract::State, response::Response};
use serde_json::{json, Map, Value};
use usher_domain::connector_limits as limits;

use super::auth::Access;
use super::{ok, Route};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![Route::get("/v1.0/$metadata/openapi.json", serve)
        .access(Access::Public)
        .doc("Metadata", "This OpenAPI document")
        .answers(200, "openApiDocument")]
}

async fn serve(State(state): State<AppState>) -> Response {
    ok(document(&state.settings.issuer))
}

fn query_parameter(name: &str) -> Value {
    let (description, schema) = match name {
        "$filter" => (
            "OData filter: comparisons joined by `and`; see the operation for the properties supported",
            json!({"type": "string"}),
        ),
        "$top" => (
            "Page size, 1 to 999 (default 100)",
            json!({"type": "integer", "minimum": 1, "maximum": 999}),
        ),
        "$select" => ("Comma-separated properties to return", json!({"type": "string"})),
        "$expand" => ("Comma-separated navigation properties to expand", json!({"type": "string"})),
        "$skiptoken" => (
            "Paging cursor; use the @odata.nextLink of the previous page rather than building it",
            json!({"type": "string"}),
        ),
        _ => ("", json!({"type": "string"})),
    };
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn operation_id(route: &Route) -> String {
    let mut id = route.method.as_str().to_ascii_lowercase();
    for segment in route.path.split('/').skip(2) {
        let clean: String = segment
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        if !clean.is_empty() {
            id.push('_');
            id.push_str(&clean);
        }
    }
    id
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn operation(route: &Route) -> Value {
    let mut op = Map::new();
    op.insert("tags".into(), json!([route.tag]));
    op.insert("summary".into(), json!(route.summary));
    op.insert("operationId".into(), json!(operation_id(route)));
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
        })
        .collect();
    parameters.extend(route.query.iter().map(|q| query_parameter(q)));
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(body) = route.request {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": schema_ref(body)}}}),
        );
    }
    let mut responses = Map::new();
    let success = match (route.response, route.collection) {
        (None, _) => json!({"description": "Done"}),
        (Some(s), true) => json!({"description": "A page of the collection", "content": {
        "application/json": {"schema": {"type": "object", "properties": {
            "@odata.context": {"type": "string"},
            "value": {"type": "array", "items": schema_ref(s)},
            "@odata.nextLink": {"type": "string", "description": "The next page, when there is one"},
        }}}}}),
        (Some(s), false) => {
            json!({"description": "OK", "content": {"application/json": {"schema": schema_ref(s)}}})
        }
    };
    responses.insert(route.status.to_string(), success);
    let errors: &[&str] = match route.access {
        Access::Public => &["500"],
        _ => &["400", "401", "403", "404", "409", "429", "500"],
    };
    for status in errors {
        responses.insert(
            (*status).to_owned(),
            json!({"$ref": "#/components/responses/Error"}),
        );
    }
    op.insert("responses".into(), Value::Object(responses));
    let permissions = route.access.permissions();
    if permissions.is_empty() {
        op.insert("security".into(), json!([]));
    } else {
        op.insert(
            "security".into(),
            json!([{"clientCredentials": permissions}, {"bearer": []}]),
        );
        op.insert("x-permissions".into(), json!(permissions));
        op.insert(
            "description".into(),
            json!(format!(
                "Needs one of the application permissions {}.",
                permissions.join(", ")
            )),
        );
    }
    Value::Object(op)
}

/// The whole document; `issuer` is the server and the token endpoint's base.
pub fn document(issuer: &str) -> Value {
    let mut paths = Map::new();
    for route in super::routes() {
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(
                route.method.as_str().to_ascii_lowercase(),
                operation(&route),
            );
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Usher admin API",
            "version": "1.0",
            "description": "A Microsoft Graph–compatible subset for managing Usher: API connectors, user flows, attributes, identity providers, applications, users, sign-up requests and connector call records. Graph's paths and JSON shapes are followed; Usher's extensions are properties whose names start with `usher`. Errors are Graph's: {\"error\": {\"code\", \"message\", \"innerError\": {\"request-id\", \"date\"}}}. Secrets are write-only and read back as ******.",
        },
        "servers": [{"url": issuer}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "clientCredentials": {
                    "type": "oauth2",
                    "description": "An access token from Usher's token endpoint by the client-credentials grant; the application's roles are the permissions.",
                    "flows": {"clientCredentials": {
                        "tokenUrl": format!("{issuer}/token"),
                        "scopes": {
                            "User.Read.All": "Read users and sign-up requests",
                            "User.ReadWrite.All": "Manage users and decide sign-up requests",
                            "APIConnectors.Read.All": "Read API connectors and their call records",
                            "APIConnectors.ReadWrite.All": "Manage API connectors",
                            "IdentityUserFlow.Read.All": "Read user flows, attributes, identity providers and applications",
                            "IdentityUserFlow.ReadWrite.All": "Manage user flows, attributes, identity providers and applications",
                            "CustomAuthenticationExtension.Read.All": "Read custom authentication extensions",
                            "CustomAuthenticationExtension.ReadWrite.All": "Manage custom authentication extensions",
                            "EventListener.Read.All": "Read where extensions run (user flows' event handlers)",
                            "EventListener.ReadWrite.All": "Attach extensions to user flows' events",
                        },
                    }},
                },
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
            "responses": {
                "Error": {"description": "An error in Graph's shape", "content": {"application/json": {"schema": schema_ref("error")}}},
            },
            "schemas": schemas(),
        },
    })
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn secret(description: &str) -> Value {
    json!({"type": "string", "writeOnly": true, "description": format!("{description} Write-only: reads show ******, and ****** sent back keeps the stored value.")})
}

/// The schemas the operations name, written part by part of the API.
fn schemas() -> Value {
    let mut s = Map::new();
    shared_schemas(&mut s);
    connector_schemas(&mut s);
    extension_schemas(&mut s);
    user_flow_schemas(&mut s);
    identity_provider_schemas(&mut s);
    attribute_schemas(&mut s);
    application_schemas(&mut s);
    user_schemas(&mut s);
    s.insert(
        "openApiDocument".into(),
        json!({"type": "object", "description": "This document"}),
    );
    Value::Object(s)
}

/// What every part of the API shares: Graph's error and the body of a `$ref`.
fn shared_schemas(s: &mut Map<String, Value>) {
    s.insert("error".into(), json!({"type": "object", "properties": {"error": {"type": "object", "properties": {
            "code": string("Request_BadRequest, Request_UnsupportedQuery, InvalidAuthenticationToken, Authorization_RequestDenied, Request_ResourceNotFound, ObjectConflict, Service_InternalServerError, …"),
            "message": string("What went wrong; names the property at fault"),
            "innerError": {"type": "object", "properties": {"request-id": {"type": "string"}, "date": {"type": "string"}}},
        }}}}));
    s.insert("reference".into(), json!({"type": "object", "properties": {
            "@odata.id": string("The URL of the object referred to, e.g. https://…/v1.0/identity/apiConnectors/{id}; {} clears where that is allowed"),
        }}));
}

/// Custom authentication extensions and where user flows run them.
fn extension_schemas(s: &mut Map<String, Value>) {
    let handler = |event: &str| {
        json!({"type": "object", "nullable": true, "properties": {
            "@odata.type": string(&format!("#microsoft.graph.on{event}CustomExtensionHandler")),
            "customExtension": {"type": "object", "properties": {"id": string("The extension's id")}},
        }})
    };
    s.insert("customAuthenticationExtension".into(), json!({"type": "object", "properties": {
        "@odata.type": string("The event: #microsoft.graph.onAttributeCollectionStartCustomExtension, #microsoft.graph.onAttributeCollectionSubmitCustomExtension, #microsoft.graph.onTokenIssuanceStartCustomExtension or #microsoft.graph.onOtpSendCustomExtension (required on create; cannot change)"),
        "id": string("Assigned by Usher on create, unless given"),
        "displayName": string("Required on create"),
        "description": {"type": "string", "nullable": true},
        "endpointConfiguration": {"type": "object", "properties": {
            "@odata.type": string("#microsoft.graph.httpRequestEndpoint"),
            "targetUrl": string("https:// and a public address, unless the operator allows otherwise"),
        }},
        "authenticationConfiguration": {"type": "object", "nullable": true, "properties": {
            "@odata.type": string("#microsoft.graph.azureAdTokenAuthentication"),
            "resourceId": string("api://<the target's host>/<app id>: the aud of the token Usher issues"),
            "usherCallerId": string("Usher: the token's azp and appid (default 99045fe1-7639-4a75-9d4a-577b6ca3810f)"),
        }},
        "clientConfiguration": {"type": "object", "properties": {
            "timeoutInMilliseconds": {"type": "integer", "minimum": limits::lo(&limits::extension::TIMEOUT_MS), "maximum": limits::hi(&limits::extension::TIMEOUT_MS)},
            "maximumRetries": {"type": "integer", "minimum": limits::lo(&limits::extension::RETRIES), "maximum": limits::hi(&limits::extension::RETRIES)},
        }},
        "claimsForTokenConfiguration": {"type": "array", "description": "Token issuance only: the claims of the answer that reach the token", "items": {"type": "object", "properties": {"claimIdInApiResponse": {"type": "string"}}}},
        "usherBudgetMs": {"type": "integer", "description": "Usher: the whole call, retries included"},
        "usherFailurePolicy": string("Usher: block (default) or continue; continue on an OTP extension sends the code by Usher's mailer instead"),
    }}));
    s.insert("authenticationEventListener".into(), json!({"type": "object", "properties": {
        "@odata.type": string("#microsoft.graph.onTokenIssuanceStartListener or #microsoft.graph.onEmailOtpSendListener (required on create; cannot change)"),
        "id": string("Assigned by Usher on create, unless given"),
        "priority": {"type": "integer", "minimum": 0, "maximum": 1_000_000, "description": "Lower runs first (default 500)"},
        "conditions": {"type": "object", "properties": {"applications": {"type": "object", "properties": {
            "includeApplications": {"type": "array", "items": {"type": "object", "properties": {"appId": string("A client id")}}},
            "includeAllApplications": {"type": "boolean", "description": "Only false is supported"},
        }}}},
        "handler": {"type": "object", "properties": {
            "@odata.type": string("#microsoft.graph.onTokenIssuanceStartCustomExtensionHandler or #microsoft.graph.onOtpSendCustomExtensionHandler"),
            "customExtension": {"type": "object", "properties": {"id": string("The extension's id")}},
        }},
        "behaviorOnError": {"type": "object", "nullable": true, "description": "OTP listeners: #microsoft.graph.fallbackToMicrosoftProviderOnError sends the code by Usher's mailer when the extension fails"},
    }}));
    s.insert("authenticationConfigurationValidation".into(), json!({"type": "object", "properties": {
        "errors": {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
        "warnings": {"type": "array", "items": {"type": "object"}},
    }}));
    s.insert("externalUsersSelfServiceSignUpEventsFlow".into(), json!({"type": "object", "description": "A user flow (same id) as External ID's sign-up events flow", "properties": {
        "@odata.type": string("#microsoft.graph.externalUsersSelfServiceSignUpEventsFlow"),
        "id": string("The user flow's id"),
        "displayName": {"type": "string", "readOnly": true},
        "conditions": {"type": "object", "readOnly": true, "description": "The applications signing in with this user flow"},
        "onAttributeCollectionStart": handler("AttributeCollectionStart"),
        "onAttributeCollectionSubmit": handler("AttributeCollectionSubmit"),
    }}));
}

/// API connectors, their certificates and the records of their calls.
fn connector_schemas(s: &mut Map<String, Value>) {
    s.insert("identityApiConnector".into(), json!({"type": "object", "properties": {
            "id": string("Assigned by Usher on create, unless given (Usher: 1 to 64 of A-Z a-z 0-9 . _ -)"),
            "displayName": string("Required on create"),
            "targetUrl": string("https:// and a public address, unless the operator allows otherwise"),
            "authenticationConfiguration": {"type": "object", "nullable": true, "description": "#microsoft.graph.basicAuthentication {username, password} or #microsoft.graph.pkcs12Certificate {pkcs12Value (base64 .pfx), password} on write; a certificate connector reads as #microsoft.graph.clientCertificateAuthentication {certificateList: [{thumbprint, notBefore, notAfter, isActive}]} (Unix seconds; the newest valid certificate is active)", "properties": {
                "@odata.type": {"type": "string"},
                "username": {"type": "string"},
                "password": secret("The Basic or PKCS#12 password."),
                "pkcs12Value": secret("Base64 of a .pfx file."),
                "certificateList": {"type": "array", "readOnly": true, "items": {"type": "object", "properties": {
                    "thumbprint": {"type": "string"}, "notBefore": {"type": "integer"}, "notAfter": {"type": "integer"}, "isActive": {"type": "boolean"}}}},
            }},
            "usherApiKey": {"type": "object", "nullable": true, "description": "Usher: a static key in a named header (instead of authenticationConfiguration); null removes it", "properties": {
                "header": string("A header name such as x-api-key"), "value": secret("The key.")}},
            "usherOAuthClientCredentials": {"type": "object", "nullable": true, "description": "Usher: a bearer token by the client-credentials grant (instead of authenticationConfiguration); null removes it", "properties": {
                "tokenUrl": {"type": "string"}, "clientId": {"type": "string"}, "clientSecret": secret("The client secret."), "scope": {"type": "string", "nullable": true}}},
            "usherSigningSecrets": {"type": "array", "items": secret("A Standard Webhooks secret, whsec_<base64>."), "description": "Usher: request signing secrets; several while rotating"},
            "usherTimeoutMs": {"type": "integer", "minimum": limits::TIMEOUT_MS.start(), "maximum": limits::TIMEOUT_MS.end(), "description": "Usher: per attempt (default 10000)"},
            "usherRetries": {"type": "integer", "minimum": limits::RETRIES.start(), "maximum": limits::RETRIES.end(), "description": "Usher: attempts after the first (default 1)"},
            "usherBudgetMs": {"type": "integer", "minimum": limits::BUDGET_MS.start(), "maximum": limits::BUDGET_MS.end(), "description": "Usher: the whole call, retries included (default 20000)"},
            "usherFailurePolicy": {"type": "string", "enum": ["block", "continue"], "description": "Usher: what a failed call does (default block)"},
            "usherLenient": {"type": "boolean", "description": "Usher: accept Allow for Continue and ValidationError with HTTP 200"},
            "usherBreaker": {"type": "object", "description": "Usher: circuit breaker", "properties": {
                "failureThreshold": {"type": "integer", "minimum": limits::BREAKER_FAILURE_THRESHOLD.start(), "maximum": limits::BREAKER_FAILURE_THRESHOLD.end()}, "openSeconds": {"type": "integer", "minimum": limits::BREAKER_OPEN_SECONDS.start(), "maximum": limits::BREAKER_OPEN_SECONDS.end()}}},
            "usherExtraRootCertificates": {"type": "array", "items": {"type": "string"}, "maxItems": 20, "description": "Usher: PEM CA certificates trusted for this connector's server besides the public web roots (a company CA); null or [] clears; read back one certificate per item"},
        }}));
    s.insert("pkcs12Certificate".into(), json!({"type": "object", "properties": {
            "pkcs12Value": secret("Base64 of a .pfx file."), "password": secret("Its password.")}, "required": ["pkcs12Value"]}));
    s.insert("usherConnectorCall".into(), json!({"type": "object", "description": "Usher: one connector call, retries included", "properties": {
            "id": string("The usher-call-id, also the reference a user sees on the error page"),
            "connectorId": {"type": "string"}, "userFlowId": {"type": "string"},
            "step": {"type": "string", "enum": ["PostFederationSignup", "PostAttributeCollection", "PreTokenIssuance"]},
            "flowId": {"type": "string"}, "attempts": {"type": "integer"},
            "httpStatus": {"type": "integer", "nullable": true}, "latencyMs": {"type": "integer"},
            "outcome": {"type": "string", "enum": ["continue", "block", "validationError", "failed"]},
            "failureReason": {"type": "string", "nullable": true},
            "errorCode": {"type": "integer", "nullable": true, "description": "A failed call of a custom authentication extension: the Entra error code (1003002, …)"},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "requestBody": {"type": "string", "nullable": true, "description": "Only when the operator records bodies; secrets removed"},
            "responseBody": {"type": "string", "nullable": true},
            "createdDateTime": {"type": "string", "format": "date-time"},
        }}));
}

/// User flows and the API connectors of their steps.
fn user_flow_schemas(s: &mut Map<String, Value>) {
    s.insert("b2xIdentityUserFlow".into(), json!({"type": "object", "properties": {
            "id": string("B2X_1_<name>; on create the prefix is added"),
            "userFlowType": {"type": "string", "enum": ["signUpOrSignIn"]},
            "userFlowTypeVersion": {"type": "integer", "enum": [1]},
            "identityProviders": {"type": "array", "writeOnly": true, "description": "On create: [{\"id\": \"EmailPassword-OAUTH\"}, …] (default EmailPassword-OAUTH)", "items": {"type": "object", "properties": {"id": {"type": "string"}}}},
            "apiConnectorConfiguration": {"type": "object", "writeOnly": true, "description": "On create: {\"postFederationSignup\": {\"@odata.id\": …}, \"postAttributeCollection\": {…}, \"preTokenIssuance\": {…}}"},
            "usherRequiresApproval": {"type": "boolean", "description": "Usher: sign-ups wait in the approval queue (/v1.0/usher/signUpRequests)"},
            "usherClaims": {"type": "array", "items": {"type": "string"}, "description": "Usher: attributes returned as claims without being on the page (default [\"email\"])"},
        }}));
    let steps: Map<String, Value> = usher_domain::ConnectorStep::ALL
        .into_iter()
        .map(|step| {
            (
                step.slot_name().to_owned(),
                json!({"type": "array", "items": {"type": "string"}}),
            )
        })
        .collect();
    s.insert("userFlowApiConnectorConfiguration".into(), json!({"type": "object", "properties": {
            "postFederationSignup": {"allOf": [schema_ref("identityApiConnector")], "nullable": true, "description": "With $expand: the step's (first) connector"},
            "postAttributeCollection": {"allOf": [schema_ref("identityApiConnector")], "nullable": true},
            "preTokenIssuance": {"allOf": [schema_ref("identityApiConnector")], "nullable": true, "description": "Usher, as in Azure AD B2C"},
            "usherConnectors": {"type": "object", "description": "Usher: the ordered connector ids of each step; PATCH sets the steps given", "properties": steps},
        }}));
}

/// Identity providers, built-in and configured, with Usher's settings.
fn identity_provider_schemas(s: &mut Map<String, Value>) {
    s.insert("identityProvider".into(), json!({"type": "object", "properties": {
            "@odata.type": string("#microsoft.graph.builtInIdentityProvider, #microsoft.graph.socialIdentityProvider, #microsoft.graph.openIdConnectIdentityProvider or #usher.oauth2IdentityProvider"),
            "id": string("Built-in: EmailPassword-OAUTH, EmailOtpSignup-OAUTH; otherwise as configured (e.g. Google-OAUTH)"),
            "displayName": string("The sign-in button text"),
            "identityProviderType": {"type": "string", "enum": ["EmailPassword", "EmailOTP", "Google", "Facebook", "GitHub", "Microsoft", "OpenIDConnect", "OAuth2"]},
            "clientId": {"type": "string"}, "clientSecret": secret("The client secret at the provider."),
            "scope": string("Space-separated scopes; empty for the type's defaults"),
            "metadataUrl": string("OpenIDConnect: {issuer}/.well-known/openid-configuration"),
            "usherTenant": string("Usher, Microsoft: common, organizations, consumers or a tenant"),
            "usherAuthorizationEndpoint": string("Usher, OAuth2"), "usherTokenEndpoint": string("Usher, OAuth2"),
            "usherUserinfoEndpoint": string("Usher, OAuth2"), "usherSubjectClaim": string("Usher, OAuth2: the JSON path of the subject"),
            "usherIdentityIssuer": string("Usher, OAuth2: the issuer of its users' identities"),
            "usherClaimsMapping": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Usher: attribute id → upstream claim (on create merged over the type's defaults; on update the whole mapping)"},
            "usherEndpoints": {"type": "object", "description": "Usher: endpoint overrides (issuer, authorizationEndpoint, tokenEndpoint, userinfoEndpoint, emailsEndpoint, jwksUri)"},
            "usherClientAuthentication": {"type": "string", "nullable": true, "enum": ["client_secret_basic", "client_secret_post"]},
        }}));
}

/// User flow attributes and their place on a flow's page.
fn attribute_schemas(s: &mut Map<String, Value>) {
    s.insert("identityUserFlowAttribute".into(), json!({"type": "object", "properties": {
            "id": string("Built-in (city, displayName, …, matched without case) or extension_<appId>_<Name>"),
            "displayName": string("On create, the name: 1 to 64 ASCII letters and digits"),
            "description": {"type": "string"},
            "userFlowAttributeType": {"type": "string", "enum": ["builtIn", "custom"], "readOnly": true},
            "dataType": {"type": "string", "enum": ["string", "boolean", "int64"]},
        }}));
    s.insert("identityUserFlowAttributeAssignment".into(), json!({"type": "object", "properties": {
            "id": string("The attribute's id"),
            "displayName": string("The label on the page"),
            "isOptional": {"type": "boolean"},
            "requiresVerification": {"type": "boolean", "enum": [false]},
            "userInputType": {"type": "string", "enum": ["textBox", "emailBox", "numericTextBox", "checkboxSingleSelect", "radioSingleSelect", "dropdownSingleSelect", "checkboxMultiSelect"]},
            "userAttributeValues": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "value": {"type": "string"}, "isDefault": {"type": "boolean"}}}},
            "userAttribute": {"type": "object", "properties": {"id": {"type": "string"}}, "description": "Required on create"},
            "usherIsClaim": {"type": "boolean", "description": "Usher: returned to applications as a claim (default true)"},
            "usherLabels": {"type": "object", "nullable": true, "additionalProperties": {"type": "string"}, "description": "Usher: the label per language tag"},
        }}));
    s.insert("setOrder".into(), json!({"type": "object", "properties": {"newAssignmentOrder": {"type": "object", "properties": {
            "order": {"type": "array", "items": {"type": "string"}, "description": "Every assignment's id, in the new order"}}}}}));
}

/// Applications (OAuth 2.0 clients) and their secrets.
fn application_schemas(s: &mut Map<String, Value>) {
    s.insert("usherApplication".into(), json!({"type": "object", "description": "Usher: an OAuth 2.0 client", "properties": {
            "id": string("The client id"), "clientId": string("Assigned by Usher on create, unless given"),
            "displayName": {"type": "string"},
            "redirectUris": {"type": "array", "items": {"type": "string"}},
            "postLogoutRedirectUris": {"type": "array", "items": {"type": "string"}},
            "type": {"type": "string", "enum": ["public", "confidential"]},
            "userFlowId": string("The user flow people sign up and sign in with"),
            "roles": {"type": "array", "items": {"type": "string"}, "description": "Application permissions for the client-credentials grant"},
            "clientSecret": {"type": "string", "readOnly": true, "description": "A confidential client's secret: answered once on create, ****** afterwards"},
        }}));
    s.insert("passwordCredential".into(), json!({"type": "object", "properties": {
            "keyId": {"type": "string"}, "hint": {"type": "string"},
            "secretText": string("The new secret, answered once"), "clientSecret": string("The same"),
            "startDateTime": {"type": "string", "format": "date-time"}, "endDateTime": {"type": "string", "nullable": true}}}));
}

/// Users and sign-up requests, which share the shape of an identity.
fn user_schemas(s: &mut Map<String, Value>) {
    let identity = json!({"type": "object", "properties": {
        "signInType": {"type": "string", "enum": ["emailAddress", "federated"]},
        "issuer": string("For emailAddress, this service's host; for email one-time passcode, mail; otherwise the provider (google.com, facebook.com, …)"),
        "issuerAssignedId": string("The email address, or the provider's subject"),
    }, "required": ["signInType", "issuer", "issuerAssignedId"]});
    s.insert(super::users::RESET_LINK_REQUEST.into(), json!({"type": "object", "required": ["clientId"], "properties": {
            "clientId": string("The application whose user flow the reset runs in (it must have email and password accounts); the mail names it"),
        }}));
    s.insert("user".into(), json!({"type": "object", "additionalProperties": {"description": "Custom attributes under their full names, extension_<appId>_<Name>"}, "properties": {
            "id": {"type": "string", "readOnly": true},
            "mail": string("The verified email address"),
            "displayName": {"type": "string"}, "givenName": {"type": "string"}, "surname": {"type": "string"},
            "jobTitle": {"type": "string"}, "streetAddress": {"type": "string"}, "city": {"type": "string"},
            "postalCode": {"type": "string"}, "state": {"type": "string"}, "country": {"type": "string"},
            "accountEnabled": {"type": "boolean"},
            "createdDateTime": {"type": "string", "format": "date-time", "readOnly": true},
            "lastPasswordChangeDateTime": {"type": "string", "format": "date-time", "nullable": true, "readOnly": true, "description": "When the password was last set (sign-up, reset, change, an administrator); null without a password"},
            "userType": {"type": "string", "readOnly": true},
            "identities": {"type": "array", "items": identity, "description": "Unique across users (409); PATCH replaces them"},
            "passwordProfile": {"type": "object", "writeOnly": true, "properties": {"password": {"type": "string"}, "forceChangePasswordNextSignIn": {"type": "boolean", "enum": [false]}}, "description": "For a local account (emailAddress identity)"},
            "usherRoles": {"type": "array", "items": {"type": "string"}, "description": "Usher: administrative roles (e.g. Usher.Admin); answered by GET /users/{id}"},
        }}));
    s.insert("usherSignUpRequest".into(), json!({"type": "object", "additionalProperties": {"description": "The attributes the user gave, under their Graph names"}, "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "approved", "denied"]},
            "userFlowId": {"type": "string"}, "clientId": {"type": "string"},
            "email": {"type": "string"}, "identities": {"type": "array", "items": identity},
            "createdDateTime": {"type": "string", "format": "date-time"},
            "decidedBy": {"type": "string", "nullable": true}, "decidedDateTime": {"type": "string", "nullable": true},
            "userId": {"type": "string", "nullable": true, "description": "The user created on approval"},
        }}));
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Every schema an operation names is defined.
    #[test]
    fn schemas_referenced_are_defined() {
        let doc = document("https://id.example");
        let text = doc.to_string();
        let schemas = &doc["components"]["schemas"];
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| *c != '"').collect();
            assert!(schemas.get(&name).is_some(), "{name} is not defined");
        }
        assert!(doc["paths"]["/v1.0/users"]["get"]["parameters"].is_array());
    }
}
