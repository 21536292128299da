//! The route table: HTTP method + path → binding, or why there is none
//! (404 for an unknown path, 405 with the allowed methods for a known one).
//!
//! A linear scan: services have tens of bindings, and a scan keeps the
//! precedence rules (see [`Template::specificity`]) obvious.

use anyhow::bail;
use http::Method;

use super::{
    rules::Binding,
    template::{Capture, Template, split_path},
};

/// The outcome of looking a request up.
#[derive(Debug)]
pub(crate) enum Lookup<'a> {
    Found {
        binding: &'a Binding,
        captures: Vec<Capture>,
    },
    /// The path is served, but not for this method.
    WrongMethod {
        allow: Vec<Method>,
    },
    NotFound,
}

/// Every binding, checked for conflicts.
#[derive(Debug)]
pub(crate) struct RouteTable {
    bindings: Vec<Binding>,
}

impl RouteTable {
    /// Two bindings with the same HTTP method and the same template shape
    /// could never be told apart: that is a startup error naming both.
    pub fn new(bindings: Vec<Binding>) -> anyhow::Result<Self> {
        for (i, a) in bindings.iter().enumerate() {
            if let Some(b) = bindings[..i]
                .iter()
                .find(|b| b.http_method == a.http_method && b.template.same_shape(&a.template))
            {
                bail!(
                    "conflicting HTTP rules: {} {} ({}) and {} {} ({})",
                    b.http_method,
                    b.template.source(),
                    b.rpc.full_name(),
                    a.http_method,
                    a.template.source(),
                    a.rpc.full_name(),
                );
            }
        }
        Ok(Self { bindings })
    }

    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    pub fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let Some(segments) = split_path(path) else {
            return Lookup::NotFound;
        };
        // (binding, captures, whether its method is the request's own).
        let mut best: Option<(&Binding, Vec<Capture>, bool)> = None;
        let mut allow: Vec<Method> = Vec::new();
        for binding in &self.bindings {
            let Some(captures) = binding.template.matches(&segments) else {
                continue;
            };
            // HEAD is GET without the body (RFC 9110 §9.3.2), so a GET
            // binding serves it unless a HEAD binding matches; the body is
            // left out by hyper on HTTP/1.1 and by axum's router on HTTP/2.
            let exact = binding.http_method == *method;
            let serves = exact || (*method == Method::HEAD && binding.http_method == Method::GET);
            if !serves {
                if !allow.contains(&binding.http_method) {
                    allow.push(binding.http_method.clone());
                }
                if binding.http_method == Method::GET && !allow.contains(&Method::HEAD) {
                    allow.push(Method::HEAD);
                }
                continue;
            }
            let better = best.as_ref().is_none_or(|(current, _, current_exact)| {
                (exact && !current_exact)
                    || (exact == *current_exact
                        && more_specific(&binding.template, &current.template))
            });
            if better {
                best = Some((binding, captures, exact));
            }
        }
        match best {
            Some((binding, captures, _)) => Lookup::Found { binding, captures },
            None if allow.is_empty() => Lookup::NotFound,
            None => {
                allow.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                Lookup::WrongMethod { allow }
            }
        }
    }
}

/// Strictly more specific; on a tie the earlier binding keeps the route.
fn more_specific(candidate: &Template, current: &Template) -> bool {
    candidate.specificity() > current.specificity()
}
