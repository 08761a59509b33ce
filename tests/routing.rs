//! Each public gRPC method has exactly one implementation: every RPC of the descriptor set is
//! routed by the gateway to one component, that component implements it, and no other does.
//! Checked by calling every method on every running component (as a mesh service, with an
//! empty request: a refusal of the request proves the method is there, UNIMPLEMENTED that it is
//! not) and through the gateway.

mod common;

use prost::Message as _;
use tonic::Code;
use tonic::transport::Channel;

use chargemesh_gateway::routes::{self, MESH_INTERNAL, ROUTES};
use common::TestMesh;

/// A method of the descriptor set: its path and whether each side streams.
struct Method {
    path: String,
    service: String,
    client_streaming: bool,
    server_streaming: bool,
}

fn methods() -> Vec<Method> {
    let set = prost_types::FileDescriptorSet::decode(chargemesh_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptors");
    let mut out = Vec::new();
    for file in &set.file {
        for service in &file.service {
            let name = format!("{}.{}", file.package(), service.name());
            for method in &service.method {
                out.push(Method {
                    path: format!("/{name}/{}", method.name()),
                    service: name.clone(),
                    client_streaming: method.client_streaming(),
                    server_streaming: method.server_streaming(),
                });
            }
        }
    }
    out
}

/// The code a method answers an empty request with (OK when it accepts it).
async fn call(channel: Channel, method: &Method) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("channel ready");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path: http::uri::PathAndQuery = method.path.parse().expect("path");
    let outcome = match (method.client_streaming, method.server_streaming) {
        (false, false) => grpc
            .unary(tonic::Request::new(()), path, codec)
            .await
            .map(|_| ()),
        (false, true) => grpc
            .server_streaming(tonic::Request::new(()), path, codec)
            .await
            .map(|_| ()),
        (true, false) => grpc
            .client_streaming(
                tonic::Request::new(tokio_stream::empty::<()>()),
                path,
                codec,
            )
            .await
            .map(|_| ()),
        (true, true) => grpc
            .streaming(
                tonic::Request::new(tokio_stream::empty::<()>()),
                path,
                codec,
            )
            .await
            .map(|_| ()),
    };
    match outcome {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn every_rpc_is_routed_to_exactly_one_component_and_implemented_there_only() {
    let mesh = TestMesh::start().await;
    let running = mesh.mesh.as_ref().expect("running");
    // Any mesh service identity may call a component directly.
    let files = mesh.pki_files("reporting");
    let config = std::sync::Arc::new(chargemesh_kit::tls::client_config(&files).expect("tls"));
    let component = |name: &str| {
        chargemesh_kit::tls::channel(
            &format!("https://127.0.0.1:{}", running.addrs[name].port()),
            config.clone(),
        )
        .expect("channel")
    };
    let all = methods();
    assert!(all.len() > 100, "the descriptor set has every API");
    let mut checked = 0;
    for method in &all {
        let routed = ROUTES
            .iter()
            .find(|(service, _)| *service == method.service)
            .map(|(_, c)| vec![*c]);
        let internal = MESH_INTERNAL
            .iter()
            .find(|(service, _)| *service == method.service)
            .map(|(_, cs)| cs.to_vec());
        let implementers = routed
            .clone()
            .or(internal)
            .unwrap_or_else(|| panic!("{} is neither routed nor mesh-internal", method.path));
        for name in routes::COMPONENTS {
            let code = call(component(name), method).await;
            if implementers.contains(name) {
                assert_ne!(
                    code,
                    Code::Unimplemented,
                    "{} is routed to {name}, which does not implement it",
                    method.path
                );
            } else {
                assert_eq!(
                    code,
                    Code::Unimplemented,
                    "{} is implemented by {name} too, beside {implementers:?}",
                    method.path
                );
            }
        }
        // Through the edge: routed methods reach their component (a refusal of the caller or
        // the request, never "unknown"); mesh-internal ones do not exist there.
        let edge = call(mesh.channel("operator"), method).await;
        if routed.is_some() {
            assert_ne!(edge, Code::Unimplemented, "{} at the gateway", method.path);
        } else {
            assert_eq!(edge, Code::Unimplemented, "{} at the gateway", method.path);
        }
        checked += 1;
    }
    assert_eq!(checked, all.len());
    mesh.stop().await;
}
