//! Path templates: the grammar, matching (including `**`, verbs,
//! percent-encoding and trailing slashes) and expansion, as tables.

use crate::transcode::template::{Template, split_path};

fn captures(template: &str, path: &str) -> Option<Vec<String>> {
    let template = Template::parse(template).expect("template parses");
    let segments = split_path(path)?;
    let captures = template.matches(&segments)?;
    Some(
        captures
            .iter()
            .map(|c| c.decode().expect("utf-8"))
            .collect(),
    )
}

#[test]
fn paths_match_templates_as_http_proto_specifies() {
    let cases: &[(&str, &str, &str, Option<&[&str]>)] = &[
        (
            "a literal path",
            "/v1/timesheets",
            "/v1/timesheets",
            Some(&[]),
        ),
        (
            "one trailing slash is ignored",
            "/v1/timesheets",
            "/v1/timesheets/",
            Some(&[]),
        ),
        (
            "two trailing slashes are not",
            "/v1/timesheets",
            "/v1/timesheets//",
            None,
        ),
        (
            "a longer path does not match",
            "/v1/timesheets",
            "/v1/timesheets/x",
            None,
        ),
        (
            "literals are case-sensitive",
            "/v1/timesheets",
            "/v1/Timesheets",
            None,
        ),
        (
            "a literal may be percent-encoded",
            "/v1/timesheets",
            "/v1/time%73heets",
            Some(&[]),
        ),
        (
            "a variable takes one segment",
            "/v1/timesheets/{id}",
            "/v1/timesheets/abc",
            Some(&["abc"]),
        ),
        (
            "{var=*} is {var}",
            "/v1/timesheets/{id=*}",
            "/v1/timesheets/abc",
            Some(&["abc"]),
        ),
        (
            "a variable is never empty",
            "/v1/timesheets/{id}",
            "/v1/timesheets/",
            None,
        ),
        (
            "a variable is one segment only",
            "/v1/timesheets/{id}",
            "/v1/timesheets/a/b",
            None,
        ),
        (
            "an encoded slash stays in the segment",
            "/v1/timesheets/{id}",
            "/v1/timesheets/a%2Fb",
            Some(&["a/b"]),
        ),
        (
            "single segments decode fully",
            "/v1/timesheets/{id}",
            "/v1/timesheets/a%20b%3Ac",
            Some(&["a b:c"]),
        ),
        (
            "unicode decodes",
            "/v1/timesheets/{id}",
            "/v1/timesheets/caf%C3%A9",
            Some(&["café"]),
        ),
        (
            "a bare * matches any one segment",
            "/v1/*/x",
            "/v1/anything/x",
            Some(&[]),
        ),
        (
            "** takes the rest",
            "/v1/{name=**}",
            "/v1/a/b/c",
            Some(&["a/b/c"]),
        ),
        (
            "** takes zero segments too",
            "/v1/{name=**}",
            "/v1",
            Some(&[""]),
        ),
        (
            "** keeps %2F encoded",
            "/v1/{name=**}",
            "/v1/a%2Fb/c%20d",
            Some(&["a%2Fb/c d"]),
        ),
        (
            "** keeps lowercase %2f encoded as %2F",
            "/v1/{name=**}",
            "/v1/a%2fb",
            Some(&["a%2Fb"]),
        ),
        (
            "a bare ** matches anything",
            "/static/**",
            "/static/a/b",
            Some(&[]),
        ),
        (
            "a variable spans a pattern",
            "/v1/{name=shelves/*/books/*}",
            "/v1/shelves/1/books/2",
            Some(&["shelves/1/books/2"]),
        ),
        (
            "a spanning pattern checks its literals",
            "/v1/{name=shelves/*/books/*}",
            "/v1/shelves/1/notes/2",
            None,
        ),
        (
            "a spanning pattern keeps %2F",
            "/v1/{name=shelves/*}",
            "/v1/shelves/a%2Fb",
            Some(&["shelves/a%2Fb"]),
        ),
        (
            "nested field paths capture",
            "/v1/{parent.id}/items",
            "/v1/p1/items",
            Some(&["p1"]),
        ),
        (
            "two variables",
            "/v1/{a}/x/{b}",
            "/v1/1/x/2",
            Some(&["1", "2"]),
        ),
        (
            "a verb after a variable",
            "/v1/timesheets/{id}:approve",
            "/v1/timesheets/abc:approve",
            Some(&["abc"]),
        ),
        (
            "a verb is required",
            "/v1/timesheets/{id}:approve",
            "/v1/timesheets/abc",
            None,
        ),
        (
            "the verb must be exact",
            "/v1/timesheets/{id}:approve",
            "/v1/timesheets/abc:approved",
            None,
        ),
        (
            "a verb needs a value before it",
            "/v1/timesheets/{id}:approve",
            "/v1/timesheets/:approve",
            None,
        ),
        (
            "a verb after a literal",
            "/v1/timesheets:upload",
            "/v1/timesheets:upload",
            Some(&[]),
        ),
        (
            "a verb after **",
            "/v1/{name=**}:undo",
            "/v1/a/b:undo",
            Some(&["a/b"]),
        ),
        (
            "no verb: a colon is data",
            "/v1/timesheets/{id}",
            "/v1/timesheets/abc:approve",
            Some(&["abc:approve"]),
        ),
        (
            "a path without a slash",
            "/v1/timesheets",
            "v1/timesheets",
            None,
        ),
    ];
    for (description, template, path, expected) in cases {
        let expected = expected.map(|v| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            captures(template, path),
            expected,
            "{description}: {template} vs {path}"
        );
    }
}

#[test]
fn a_capture_that_is_not_utf8_is_reported_not_unmatched() {
    let template = Template::parse("/v1/timesheets/{id}").expect("parses");
    let segments = split_path("/v1/timesheets/%FF").expect("splits");
    let captures = template.matches(&segments).expect("the path matches");
    assert!(
        captures[0].decode().is_err(),
        "decoding reports the bad bytes"
    );
}

#[test]
fn malformed_templates_are_refused_at_startup() {
    let cases: &[(&str, &str)] = &[
        ("no leading slash", "v1/timesheets"),
        ("the root alone", "/"),
        ("an empty segment", "/v1//timesheets"),
        ("a trailing slash", "/v1/timesheets/"),
        ("an unclosed variable", "/v1/{id"),
        ("an empty variable", "/v1/{}"),
        ("nested variables", "/v1/{a={b}}"),
        ("** before the end", "/v1/**/x"),
        ("a variable with ** before the end", "/v1/{name=**}/x"),
        ("the same field twice", "/v1/{id}/{id}"),
        ("an empty verb", "/v1/x:"),
        ("a bad field path", "/v1/{a..b}"),
        ("a stray brace", "/v1/x}"),
    ];
    for (description, template) in cases {
        assert!(
            Template::parse(template).is_err(),
            "{description}: {template} should be refused"
        );
    }
}

#[test]
fn templates_expand_back_into_encoded_paths() {
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        ("/v1/timesheets/{id}", &["abc"], Some("/v1/timesheets/abc")),
        (
            "/v1/timesheets/{id}",
            &["a b/c"],
            Some("/v1/timesheets/a%20b%2Fc"),
        ),
        (
            "/v1/timesheets/{id}",
            &["01J-x_y.z~"],
            Some("/v1/timesheets/01J-x_y.z~"),
        ),
        (
            "/v1/{name=shelves/*}",
            &["shelves/1"],
            Some("/v1/shelves/1"),
        ),
        ("/v1/{name=**}:undo", &["a/b"], Some("/v1/a/b:undo")),
        ("/v1/*/x/{id}", &["1"], None),
    ];
    for (template, values, expected) in cases {
        let template = Template::parse(template).expect("parses");
        assert_eq!(
            template.expand(values).as_deref(),
            *expected,
            "{}",
            template.source()
        );
    }
}

#[test]
fn more_specific_templates_rank_higher() {
    let rank = |t: &str| Template::parse(t).expect("parses").specificity();
    assert!(
        rank("/v1/timesheets:upload") > rank("/v1/timesheets"),
        "a verb wins"
    );
    assert!(
        rank("/v1/timesheets/mine") > rank("/v1/timesheets/{id}"),
        "a literal beats a variable"
    );
    assert!(rank("/v1/{id}/x") > rank("/v1/{name=**}"), "* beats **");
}
