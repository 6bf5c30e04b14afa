//! `GET /ui`: one page, served from the binary, that shows the signal chain
//! live. Its style and script are compiled in (`include_str!`) and inlined,
//! so the page needs no other URL of its own (no asset route can shadow a
//! block's routes) and nothing from the network.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page: `ui/page.html` with `ui/style.css` and `ui/app.js` inlined.
pub const PAGE: &str = concat!(
    include_str!("ui/head.html"),
    "<style>\n",
    include_str!("ui/style.css"),
    "</style>\n",
    include_str!("ui/body.html"),
    "<script>\n",
    include_str!("ui/app.js"),
    "</script>\n</body>\n</html>\n"
);

pub(super) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}
