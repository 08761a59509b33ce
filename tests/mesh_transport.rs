//! The mesh's HTTP/2 transport carries the streams of thousands of piles on the one connection the
//! gateway holds to a component. Two of h2's defences closed that connection under such a load,
//! failing every stream on it at once (found by `bench fleet` at 10,000 piles): the budget for
//! small DATA frames waiting unread (ENHANCE_YOUR_CALM "too_many_data_frames"), and the count of
//! streams reset before the server accepted them. A mesh server built with the kit's limits must
//! hold both on one connection.

use std::pin::Pin;
use std::time::Duration;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use chargemesh_kit::server::{ServeLimits, builder};
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use chargemesh_proto::telemetry::v1::telemetry_service_server::{
    TelemetryService, TelemetryServiceServer,
};

/// A component that takes every stream and reads none of it (as a busy one does for a while).
#[derive(Debug, Clone, Default)]
struct Hold {
    held: std::sync::Arc<tokio::sync::Mutex<Vec<Streaming<tm::ConnectRequest>>>>,
}

type Answers = Pin<Box<dyn Stream<Item = Result<tm::ConnectResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl TelemetryService for Hold {
    type ConnectStream = Answers;

    async fn connect(
        &self,
        request: Request<Streaming<tm::ConnectRequest>>,
    ) -> Result<Response<Answers>, Status> {
        self.held.lock().await.push(request.into_inner());
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }

    async fn send_pile_command(
        &self,
        _: Request<tm::SendPileCommandRequest>,
    ) -> Result<Response<tm::SendPileCommandResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }

    /// The call that proves the connection is still up.
    async fn get_pile_command(
        &self,
        _: Request<tm::GetPileCommandRequest>,
    ) -> Result<Response<tm::GetPileCommandResponse>, Status> {
        Ok(Response::new(tm::GetPileCommandResponse::default()))
    }

    async fn read_log(
        &self,
        _: Request<tm::ReadLogRequest>,
    ) -> Result<Response<tm::ReadLogResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn list_link_states(
        &self,
        _: Request<tm::ListLinkStatesRequest>,
    ) -> Result<Response<tm::ListLinkStatesResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

/// Streams on the one connection: past the small-frame budget of hyper's default 1 MiB window.
const STREAMS: u64 = 5_000;

#[tokio::test]
async fn one_mesh_connection_holds_thousands_of_streams_each_with_a_small_message_unread() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = Hold::default();
    let server = tokio::spawn(
        builder(ServeLimits::default())
            .add_service(TelemetryServiceServer::new(service.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // One connection, as the gateway's to a component, with the mesh's window.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .initial_connection_window_size(chargemesh_kit::server::MESH_CONNECTION_WINDOW)
        .connect()
        .await
        .expect("connected");
    let mut senders = Vec::new();
    let mut answers = Vec::new();
    for i in 0..STREAMS {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(tm::ConnectRequest {
            messages: vec![tm::TelemetryMessage {
                sequence: i + 1,
                ..Default::default()
            }],
        })
        .await
        .expect("queued");
        let opened = TelemetryServiceClient::new(channel.clone())
            .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap_or_else(|status| panic!("stream {i} refused: {status}"));
        senders.push(tx);
        answers.push(opened.into_inner());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(service.held.lock().await.len(), STREAMS as usize);
    // The connection is still up: a call on it is answered.
    TelemetryServiceClient::new(channel.clone())
        .get_pile_command(tm::GetPileCommandRequest::default())
        .await
        .expect("the connection survived thousands of small frames waiting unread");
    // A burst of clients giving up: their streams reset at once; the connection stays.
    drop(answers);
    drop(senders);
    tokio::time::sleep(Duration::from_millis(200)).await;
    TelemetryServiceClient::new(channel)
        .get_pile_command(tm::GetPileCommandRequest::default())
        .await
        .expect("the connection survived thousands of streams reset at once");
    server.abort();
}
