//! `POST /flow/{id}/attributes`: the attribute page (then, in the engine, the
//! `postAttributeCollection` connectors and the new user). Its fields are the user
//! flow's, so the form is a map, with every value of a repeated field (a
//! multi-select).

use std::collections::BTreeMap;

use axum::{extract::State, response::Response};

use super::{respond, FlowForm};
use crate::state::AppState;

pub async fn post(
    State(state): State<AppState>,
    FlowForm { loaded, form }: FlowForm<BTreeMap<String, Vec<String>>>,
) -> Response {
    let next = state.engine.submit_attributes(loaded, &form).await;
    respond(&state, next)
}
