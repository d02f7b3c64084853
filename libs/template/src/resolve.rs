//! Resolves CloudFormation intrinsic functions in the values the route needs.

use serde_yaml_ng::Value;
use serde_yaml_ng::value::TaggedValue;
use std::collections::HashMap;

/// Looks up parameters and resources of one template.
pub(crate) struct Resolver<'a> {
    parameters: HashMap<String, String>,
    resources: &'a serde_yaml_ng::Mapping,
}

type Failure = (String, String);

impl<'a> Resolver<'a> {
    pub(crate) fn new(
        document: &'a Value,
        overrides: &HashMap<String, String>,
    ) -> Result<Self, Failure> {
        let mut parameters = HashMap::new();
        if let Some(declared) = document.get("Parameters").and_then(Value::as_mapping) {
            for (name, declaration) in declared {
                let name = name.as_str().unwrap_or_default().to_owned();
                let value = match overrides.get(&name) {
                    Some(value) => Some(value.clone()),
                    None => declaration
                        .get("Default")
                        .map(scalar_text)
                        .transpose()
                        .map_err(|m| (format!("Parameters.{name}.Default"), m))?,
                };
                if let Some(value) = value {
                    parameters.insert(name, value);
                }
            }
        }
        for name in overrides.keys() {
            if !parameters.contains_key(name) {
                return Err((
                    format!("Parameters.{name}"),
                    "is overridden but not declared".into(),
                ));
            }
        }
        let resources = document
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| ("Resources".to_owned(), "missing".to_owned()))?;
        Ok(Resolver {
            parameters,
            resources,
        })
    }

    /// The text of `value`, intrinsic functions resolved.
    pub(crate) fn string(&self, value: &Value, at: &str) -> Result<String, Failure> {
        match value {
            Value::Tagged(tagged) => self.tagged(tagged, at),
            Value::Mapping(map) if map.len() == 1 => {
                let (function, argument) = map
                    .iter()
                    .next()
                    .ok_or_else(|| (at.to_owned(), "empty mapping".to_owned()))?;
                match function.as_str() {
                    Some("Ref") => self.reference(&text(argument, at)?, at),
                    Some("Fn::GetAtt") => self.get_att(argument, at),
                    Some("Fn::Sub") => self.sub(&text(argument, at)?, at),
                    Some(other) => Err((
                        at.to_owned(),
                        format!("intrinsic function {other} is not supported here"),
                    )),
                    None => Err((at.to_owned(), "expected a value".into())),
                }
            }
            other => scalar_text(other).map_err(|m| (at.to_owned(), m)),
        }
    }

    /// A whole number, intrinsic functions resolved.
    pub(crate) fn number(&self, value: &Value, at: &str) -> Result<u64, Failure> {
        let text = self.string(value, at)?;
        text.trim().parse().map_err(|_| {
            (
                at.to_owned(),
                format!("expected a whole number, found {text:?}"),
            )
        })
    }

    fn tagged(&self, tagged: &TaggedValue, at: &str) -> Result<String, Failure> {
        let tag = tagged.tag.to_string();
        match tag.trim_start_matches('!') {
            "Ref" => self.reference(&text(&tagged.value, at)?, at),
            "GetAtt" => self.get_att(&tagged.value, at),
            "Sub" => self.sub(&text(&tagged.value, at)?, at),
            other => Err((
                at.to_owned(),
                format!("intrinsic function !{other} is not supported here"),
            )),
        }
    }

    fn reference(&self, name: &str, at: &str) -> Result<String, Failure> {
        if let Some(value) = self.parameters.get(name) {
            return Ok(value.clone());
        }
        let pseudo = match name {
            "AWS::Region" => Some("local"),
            "AWS::AccountId" => Some("000000000000"),
            "AWS::StackName" => Some("busline-local"),
            "AWS::Partition" => Some("aws"),
            "AWS::URLSuffix" => Some("amazonaws.com"),
            _ => None,
        };
        if let Some(value) = pseudo {
            return Ok(value.to_owned());
        }
        if let Some(resource) = self.resources.get(name) {
            // A table's Ref is its name: the one it declares, which the local table has too.
            if resource.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table")
                && let Some(table_name) =
                    resource.get("Properties").and_then(|p| p.get("TableName"))
            {
                return self.string(
                    table_name,
                    &format!("Resources.{name}.Properties.TableName"),
                );
            }
            // A resource's Ref (a queue's URL, a bucket's name) is its logical id locally.
            return Ok(name.to_owned());
        }
        Err((
            at.to_owned(),
            format!("!Ref {name}: no parameter or resource of that name"),
        ))
    }

    fn get_att(&self, argument: &Value, at: &str) -> Result<String, Failure> {
        let (resource, attribute) = match argument {
            Value::String(dotted) => dotted
                .split_once('.')
                .map(|(r, a)| (r.to_owned(), a.to_owned())),
            Value::Sequence(parts) if parts.len() == 2 => {
                Some((text(&parts[0], at)?, text(&parts[1], at)?))
            }
            _ => None,
        }
        .ok_or_else(|| {
            (
                at.to_owned(),
                "!GetAtt expects Resource.Attribute".to_owned(),
            )
        })?;
        if !self.resources.contains_key(resource.as_str()) {
            return Err((
                at.to_owned(),
                format!("!GetAtt {resource}.{attribute}: no resource {resource}"),
            ));
        }
        match attribute.as_str() {
            // Locally a queue's ARN, URL and name are all its logical id.
            "Arn" | "QueueName" | "QueueUrl" => Ok(resource),
            other => Err((
                at.to_owned(),
                format!("!GetAtt {resource}.{other}: attribute not supported here"),
            )),
        }
    }

    fn sub(&self, template: &str, at: &str) -> Result<String, Failure> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| (at.to_owned(), format!("!Sub {template:?}: unclosed ${{")))?;
            let name = &after[..end];
            let value = match name.split_once('.') {
                Some(_) => self.get_att(&Value::String(name.to_owned()), at)?,
                None => self.reference(name, at)?,
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn text(value: &Value, at: &str) -> Result<String, Failure> {
    scalar_text(value).map_err(|m| (at.to_owned(), m))
}

fn scalar_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a plain value, found {other:?}")),
    }
}
