//! Every gRPC call observed: a span with its method, the caller's account (set by auth, never
//! the key), its status code and duration, and the usual server metrics
//! (`grpc_server_handled_total`, `grpc_server_handling_seconds`). A call's code is read where
//! gRPC puts it: in the headers of a call that failed at once, else in the trailers at its end;
//! a call the client abandoned counts as CANCELLED.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::metrics;

/// Adds [`Observe`] around a service.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner }
    }
}

/// A service whose calls are observed.
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    R: Body,
{
    type Response = Response<ObservedBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.uri().path().to_string();
        let span = tracing::info_span!(
            "grpc",
            method = %method,
            account_id = Empty,
            code = Empty,
            duration_ms = Empty
        );
        let call = Call {
            method,
            span: span.clone(),
            started: Instant::now(),
        };
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        }
        .instrument(span);
        Box::pin(async move {
            let response = future.await?;
            let code = code_of(response.headers());
            Ok(response.map(|inner| ObservedBody {
                inner,
                call: Some(call),
                code,
            }))
        })
    }
}

/// What is known of a call until it ends.
struct Call {
    method: String,
    span: Span,
    started: Instant,
}

impl Call {
    fn finish(self, code: &str) {
        let elapsed = self.started.elapsed();
        self.span.record("code", code);
        self.span
            .record("duration_ms", elapsed.as_secs_f64() * 1000.0);
        metrics::grpc_handled(&self.method, code, elapsed);
        let _entered = self.span.enter();
        if code == "OK" {
            tracing::debug!("gRPC call finished");
        } else {
            tracing::info!("gRPC call failed");
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that records the call's outcome when it ends or is dropped.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
        code: Option<&'static str>,
    }

    impl<B> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(call) = this.call.take() {
                call.finish(this.code.unwrap_or("CANCELLED"));
            }
        }
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        let ended = match &frame {
            None => true,
            Some(Ok(frame)) => match frame.trailers_ref() {
                Some(trailers) => {
                    *this.code = code_of(trailers).or(*this.code);
                    true
                }
                None => false,
            },
            Some(Err(_)) => {
                *this.code = Some("UNKNOWN");
                true
            }
        };
        if ended && let Some(call) = this.call.take() {
            call.finish(this.code.unwrap_or("OK"));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The name of the `grpc-status` in `headers`, if there is one.
fn code_of(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(super::status::code_name(tonic::Code::from_i32(value)))
}
