//! Path templates → OpenAPI paths: `{var=…}` becomes `{var}` (its
//! sub-pattern a regex), a bare wildcard a named parameter, and the shape
//! that tells whether two paths are one path to OpenAPI.

/// One template variable (or anonymous wildcard) as an OpenAPI parameter.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PathVariable {
    pub(super) name: String,
    /// For `{var=a/*}` and the like: the regex the value must match.
    pub(super) pattern: Option<String>,
    pub(super) multi_segment: bool,
    /// A bare `*`/`**` outside any variable: matched, but bound to nothing.
    pub(super) anonymous: bool,
}

/// `/v1/{name=shelves/*}/books/{id}:verb` → `/v1/{name}/books/{id}:verb`,
/// with one entry per `{…}` (or bare wildcard), in template order. The
/// template was validated when the binding was read.
pub(super) fn openapi_path(source: &str) -> (String, Vec<PathVariable>) {
    let rest = source.strip_prefix('/').unwrap_or(source);
    let mut segments = Vec::new();
    let mut verb = "";
    let (mut in_variable, mut start) = (false, 0);
    for (i, c) in rest.char_indices() {
        match c {
            '{' => in_variable = true,
            '}' => in_variable = false,
            '/' if !in_variable => {
                segments.push(&rest[start..i]);
                start = i + 1;
            }
            ':' if !in_variable => {
                verb = &rest[i..];
                break;
            }
            _ => {}
        }
    }
    segments.push(&rest[start..rest.len() - verb.len()]);
    let mut variables = Vec::new();
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        let variable =
            if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let (name, sub) = inner.split_once('=').unwrap_or((inner, "*"));
                PathVariable {
                    name: name.to_owned(),
                    pattern: (sub != "*").then(|| segments_regex(sub)),
                    multi_segment: sub.contains('/') || sub.contains("**"),
                    anonymous: false,
                }
            } else if segment == "*" || segment == "**" {
                PathVariable {
                    name: format!("_wildcard{}", variables.len() + 1),
                    pattern: None,
                    multi_segment: segment == "**",
                    anonymous: true,
                }
            } else {
                out.push_str(segment);
                continue;
            };
        out.push('{');
        out.push_str(&variable.name);
        out.push('}');
        variables.push(variable);
    }
    out.push_str(verb);
    (out, variables)
}

/// The path with every variable name erased: paths with equal shapes are
/// one path to OpenAPI.
pub(super) fn shape_of(path: &str) -> String {
    let mut shape = String::with_capacity(path.len());
    let mut in_variable = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_variable = true;
                shape.push_str("{}");
            }
            '}' => in_variable = false,
            c if !in_variable => shape.push(c),
            _ => {}
        }
    }
    shape
}

pub(super) fn segments_regex(sub: &str) -> String {
    let parts: Vec<String> = sub
        .split('/')
        .map(|s| match s {
            "*" => "[^/]+".to_owned(),
            "**" => ".*".to_owned(),
            literal => literal
                .chars()
                .flat_map(|c| {
                    let escape = r"\.^$|?*+()[]{}".contains(c);
                    escape.then_some('\\').into_iter().chain([c])
                })
                .collect(),
        })
        .collect();
    format!("^{}$", parts.join("/"))
}
