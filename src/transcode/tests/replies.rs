//! Successful replies: status codes, field names, default values,
//! `response_body` arrays, `Location` and the `Link` to the next page.

use super::{fake, http, ok_reply, send, timesheets};
use crate::{
    proto::timesheets::v1::{ListTimesheetsResponse, Timesheet},
    transcode::{JsonNames, TranscodeOptions},
};

fn stored(id: &str) -> Timesheet {
    Timesheet {
        id: id.into(),
        user_id: "alice@example.com".into(),
        date: "2026-11-27".into(),
        project: "Website".into(),
        hours: 7.5,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_create_answers_201_with_the_resource_and_its_location() {
    let (grpc, _) = fake(|_| ok_reply(&stored("01J9")));
    let body = r#"{"date":"2026-11-27","project":"Website","hours":7.5}"#;
    let answer = send(
        timesheets(TranscodeOptions::default()),
        grpc,
        http("POST", "/timesheets", body),
    )
    .await;
    assert_eq!(answer.status, 201);
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(answer.header("location"), Some("/v1/timesheets/01J9"));
    let json = answer.json();
    assert_eq!(
        json["user_id"], "alice@example.com",
        "proto field names by default"
    );
    assert_eq!(json["approved"], false, "defaults are always present");
    assert_eq!(json["notes"], "");
    assert_eq!(json["approved_by"], "");
}

#[tokio::test]
async fn an_upload_answers_201_and_locations_are_encoded() {
    let (grpc, _) = fake(|_| ok_reply(&stored("a b/c")));
    let answer = send(
        timesheets(TranscodeOptions::default()),
        grpc,
        http("POST", "/timesheets/upload", "{}"),
    )
    .await;
    assert_eq!(answer.status, 201);
    assert_eq!(answer.header("location"), Some("/v1/timesheets/a%20b%2Fc"));
}

#[tokio::test]
async fn a_reply_without_an_id_has_no_location() {
    let (grpc, _) = fake(|_| ok_reply(&stored("")));
    let answer = send(
        timesheets(TranscodeOptions::default()),
        grpc,
        http("POST", "/v1/timesheets", "{}"),
    )
    .await;
    assert_eq!(answer.status, 201);
    assert_eq!(answer.header("location"), None);
}

#[tokio::test]
async fn camel_case_names_can_be_chosen() {
    let (grpc, _) = fake(|_| ok_reply(&stored("x")));
    let options = TranscodeOptions {
        json_names: JsonNames::Camel,
        ..Default::default()
    };
    let answer = send(
        timesheets(options),
        grpc,
        http("GET", "/v1/timesheets/x", ""),
    )
    .await;
    assert_eq!(answer.status, 200);
    let json = answer.json();
    assert_eq!(json["userId"], "alice@example.com");
    assert!(json.get("user_id").is_none());
}

#[tokio::test]
async fn approving_answers_200_with_the_timesheet() {
    let (grpc, _) = fake(|_| {
        ok_reply(&Timesheet {
            approved: true,
            ..stored("x")
        })
    });
    let answer = send(
        timesheets(TranscodeOptions::default()),
        grpc,
        http("PUT", "/approvals/x", ""),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["approved"], true);
}

#[tokio::test]
async fn a_delete_answers_204_with_no_body() {
    let (grpc, _) = fake(|_| ok_reply(&()));
    let answer = send(
        timesheets(TranscodeOptions::default()),
        grpc,
        http("DELETE", "/v1/timesheets/x", ""),
    )
    .await;
    assert_eq!(answer.status, 204);
    assert!(answer.body.is_empty());
}

fn page(token: &str) -> ListTimesheetsResponse {
    ListTimesheetsResponse {
        timesheets: vec![stored("a"), stored("b")],
        next_page_token: token.into(),
    }
}

#[tokio::test]
async fn the_legacy_list_is_a_bare_array_with_the_next_page_in_a_link() {
    let (grpc, _) = fake(|_| ok_reply(&page("next/1+=")));
    let uri = "/timesheets?page_size=2&project=Web+site&page_token=old";
    let answer = send(
        timesheets(TranscodeOptions::default()),
        grpc,
        http("GET", uri, ""),
    )
    .await;
    assert_eq!(answer.status, 200);
    let json = answer.json();
    assert_eq!(
        json.as_array().map(Vec::len),
        Some(2),
        "a bare array: {json}"
    );
    assert_eq!(json[0]["approved"], false);
    assert_eq!(
        answer.header("link"),
        Some("</timesheets?page_size=2&project=Web+site&page_token=next%2F1%2B%3D>; rel=\"next\""),
        "the other parameters are kept and the token replaced"
    );
}

#[tokio::test]
async fn the_last_page_has_no_link() {
    let (grpc, _) = fake(|_| ok_reply(&page("")));
    let answer = send(
        timesheets(TranscodeOptions::default()),
        grpc,
        http("GET", "/approvals", ""),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("link"), None);
}

#[tokio::test]
async fn the_v1_list_keeps_the_token_in_the_body() {
    let (grpc, _) = fake(|_| ok_reply(&page("n1")));
    let answer = send(
        timesheets(TranscodeOptions::default()),
        grpc,
        http("GET", "/v1/timesheets", ""),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["next_page_token"], "n1");
    assert_eq!(answer.header("link"), None);
}
