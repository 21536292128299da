//! Reflection and health stay open, so tools work without a token.

use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

use crate::on_both_backends;

on_both_backends! {
    async fn reflection_v1_and_v1alpha_list_the_services_without_a_token(app: &TestApp) {
        let mut v1_client = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
        let request = v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
        };
        let mut responses = v1_client.server_reflection_info(tokio_stream::iter(vec![request])).await.expect("v1").into_inner();
        let Some(Ok(v1::ServerReflectionResponse { message_response: Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)), .. })) = responses.next().await else {
            panic!("v1 reflection answered with a service list");
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"timesheets.v1.TimesheetService"), "{names:?}");
        assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

        let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
        let request = v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol("timesheets.v1.TimesheetService".into())),
        };
        let mut responses = alpha.server_reflection_info(tokio_stream::iter(vec![request])).await.expect("v1alpha").into_inner();
        let Some(Ok(v1alpha::ServerReflectionResponse { message_response: Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)), .. })) = responses.next().await else {
            panic!("v1alpha reflection answered with file descriptors");
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }

    async fn health_reports_serving_without_a_token(app: &TestApp) {
        let mut health = HealthClient::new(app.channel.clone());
        for service in ["", "timesheets.v1.TimesheetService"] {
            let response = health.check(HealthCheckRequest { service: service.into() }).await.expect("health").into_inner();
            assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
        }
    }
}
