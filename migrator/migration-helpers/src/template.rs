//! The template subset [`ReplaceTemplateMigration`](crate::common_migrations::ReplaceTemplateMigration)
//! renders: text with `{{ settings.a.b }}` / `{{ os.variant_id }}` references, replaced by the
//! value of that key (strings as they are, other scalars as JSON). Upstream renders with
//! handlebars and schnauzer's helpers; a template using helpers or blocks is refused here with
//! an error naming it, rather than rendered differently.

use crate::Value;
use crate::error::{self, Result};
use std::collections::HashMap;

/// Renders `template` over `data` (dotted key name → value).
pub fn render(template: &str, data: &HashMap<String, Value>) -> Result<String> {
    let fail = |reason: String| error::TemplateSnafu { template, reason }.fail();
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return fail("unclosed '{{'".into());
        };
        let expression = after[..end].trim();
        let is_path = !expression.is_empty()
            && (expression.starts_with("settings.") || expression.starts_with("os."))
            && expression
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !is_path {
            return fail(format!(
                "'{{{{{expression}}}}}' is not a settings.* or os.* reference (helpers and blocks are not supported)"
            ));
        }
        match data.get(expression) {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Number(_) | Value::Bool(_)) => out.push_str(&data[expression].to_string()),
            Some(other) => return fail(format!("'{expression}' is not a scalar: {other}")),
            None => return fail(format!("'{expression}' has no value")),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> HashMap<String, Value> {
        HashMap::from([
            ("settings.a".to_string(), json!("hello")),
            ("settings.n".to_string(), json!(3)),
            ("os.variant_id".to_string(), json!("aws-dev")),
        ])
    }

    #[test]
    fn substitutes_references() {
        assert_eq!(
            render(
                "{{settings.a}}, {{ os.variant_id }} x{{settings.n}}",
                &data()
            )
            .unwrap(),
            "hello, aws-dev x3"
        );
        assert_eq!(render("plain", &data()).unwrap(), "plain");
    }

    #[test]
    fn refuses_what_it_cannot_render() {
        for bad in [
            "{{settings.missing}}",
            "{{#if settings.a}}x{{/if}}",
            "{{default 'x' settings.a}}",
            "{{settings.a",
        ] {
            let err = render(bad, &data()).unwrap_err();
            assert!(err.to_string().contains("Template"), "{bad}: {err}");
        }
    }
}
