//! SVG from the DOT the host writes (`?format=svg` of `/graph` and
//! `/<block>/diagram`), laid out and drawn in Rust by `layout-rs`: no
//! Graphviz needed.
//!
//! Each declared DOT node can be tagged: its shape is drawn inside
//! `<g class="node" data-...>` so a page can find and recolour it.

use layout::backends::svg::SVGWriter;
use layout::gv::{DotParser, GraphBuilder};

/// Why a DOT text could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum SvgError {
    /// The DOT did not parse.
    #[error("the DOT of {what} does not parse: {message}")]
    Parse {
        /// Which diagram.
        what: String,
        /// The parser's message.
        message: String,
    },
    /// The layout code panicked.
    #[error("laying out {what} as SVG failed: {message}; ask for ?format=dot instead")]
    Layout {
        /// Which diagram.
        what: String,
        /// The panic message.
        message: String,
    },
}

/// Renders `dot` (called `what` in errors) as SVG. `tags[i]` holds extra
/// attributes for the `i`th node declared in `dot` (e.g.
/// `data-block="x"`); empty for none.
pub fn render(what: &str, dot: &str, tags: &[String]) -> Result<String, SvgError> {
    let graph = DotParser::new(dot)
        .process()
        .map_err(|message| SvgError::Parse {
            what: what.to_owned(),
            message,
        })?;
    // layout-rs asserts on shapes it cannot place; a panic must not take
    // the request (or the server's worker) with it.
    std::panic::catch_unwind(|| {
        let mut builder = GraphBuilder::new();
        builder.visit_graph(&graph);
        let mut visual = builder.get();
        let nodes: Vec<_> = visual.iter_nodes().collect();
        for (node, tag) in nodes.into_iter().zip(tags) {
            if !tag.is_empty() {
                visual.element_mut(node).properties = Some(format!("class=\"node\" {tag}"));
            }
        }
        let mut writer = SVGWriter::new();
        visual.do_it(false, false, false, &mut writer);
        writer.finalize()
    })
    .map_err(|panic| SvgError::Layout {
        what: what.to_owned(),
        message: panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the layout code panicked".to_owned()),
    })
}

/// `value` escaped for an XML attribute.
pub fn attr_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tagged_nodes() {
        let dot = "digraph \"g\" {\n  rankdir=LR;\n  node [shape=box];\n  a [label=\"A\"];\n  b [label=\"B\", style=filled, fillcolor=\"#ff0000\"];\n  a -> b [label=\"go\"];\n}\n";
        let svg = render(
            "test",
            dot,
            &["data-x=\"a\"".to_owned(), "data-x=\"b\"".to_owned()],
        )
        .unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("class=\"node\" data-x=\"a\""), "{svg}");
        assert!(svg.contains("class=\"node\" data-x=\"b\""), "{svg}");
        assert!(svg.contains("#ff0000ff"), "the fill colour: {svg}");
        assert!(svg.contains(">go<"), "the edge label: {svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    /// Every kind of line `Machine::to_dot_marked` writes (pseudo-nodes,
    /// a marked state, conditions, loops, `FROM_ANY`) is drawn.
    #[test]
    fn renders_a_marked_state_machine() {
        // `A` (initial) and `B`: a conditioned edge, a loop, a transition
        // from any state.
        let machine = crate::fsm::small_test_machine();
        let b = machine.state_id("B").unwrap();
        let dot = machine.to_dot_marked("m", Some((b, "#9fd3ff")));
        let tags = [
            String::new(),
            "data-state=\"A\"".to_owned(),
            "data-state=\"B\" data-current=\"true\"".to_owned(),
        ];
        let svg = render("m", &dot, &tags).unwrap();
        assert!(
            svg.contains("data-state=\"B\" data-current=\"true\""),
            "{svg}"
        );
        assert!(svg.contains("#9fd3ffff"), "the current state's fill: {svg}");
        assert!(svg.contains(">any state<"), "{svg}");
        assert!(svg.contains(">GO [ready]<"), "{svg}");
    }

    #[test]
    fn bad_dot_is_an_error_naming_the_diagram() {
        let err = render("block \"x\"", "digraph { a -> ; }", &[]).unwrap_err();
        assert!(err.to_string().contains("block \"x\""), "{err}");
    }

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(attr_escape("a\"<&>'"), "a&quot;&lt;&amp;&gt;&apos;");
    }
}
