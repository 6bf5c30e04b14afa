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

#[cfg(test)]
mod tests {
    use super::PAGE;

    /// The page loads nothing: no `src`/`href` to fetch, and the only URL
    /// in it is the SVG namespace.
    #[test]
    fn the_page_needs_no_other_url() {
        assert!(PAGE.starts_with("<!DOCTYPE html>"));
        assert!(PAGE.trim_end().ends_with("</html>"));
        for attribute in ["src=", "href=", "@import", "url("] {
            assert!(!PAGE.contains(attribute), "the page refers to {attribute}");
        }
        let urls: Vec<&str> = PAGE
            .match_indices("http")
            .map(|(i, _)| &PAGE[i..(i + 30).min(PAGE.len())])
            .collect();
        assert!(
            urls.iter()
                .all(|u| u.starts_with("http://www.w3.org/2000/svg")),
            "{urls:?}"
        );
    }
}
