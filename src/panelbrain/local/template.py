"""Read ``template.yaml`` and resolve the intrinsic functions the local engine needs.

CloudFormation's short tags (``!Ref``, ``!GetAtt``, ``!Sub``) become their long forms, and
references resolve to the names and ARNs the local engine gives each resource.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from panelbrain.errors import PanelbrainError

# The one version the local engine publishes of each function (and state machine) it deploys.
LOCAL_VERSION = "1"


class TemplateError(PanelbrainError):
    """The template uses something the local engine cannot resolve."""


class _Loader(yaml.SafeLoader):
    pass


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_Loader.add_multi_constructor("!", lambda loader, suffix, node: _construct(loader, suffix, node))


def evaluate_condition(
    expression: Any,
    *,
    value: Callable[[Any], str],
    condition: Callable[[str], bool],
    refuse: Callable[[str], Exception],
) -> bool:
    """One of a template's Conditions (Fn::Equals, Not, And, Or, Condition): ``value`` renders an
    Fn::Equals operand, ``condition`` evaluates a named condition, ``refuse`` makes the error for
    what cannot be evaluated."""

    def truth(node: Any) -> bool:
        if not isinstance(node, dict) or len(node) != 1:
            raise refuse(f"condition {node!r}")
        ((function, arguments),) = node.items()
        if function == "Fn::Equals":
            left, right = (value(a) for a in arguments)
            return left == right
        if function == "Fn::Not":
            return not truth(arguments[0])
        if function == "Fn::And":
            return all(truth(a) for a in arguments)
        if function == "Fn::Or":
            return any(truth(a) for a in arguments)
        if function == "Condition":
            return condition(arguments)
        raise refuse(f"condition function {function}")

    return truth(expression)


_RATE = re.compile(r"rate\((\d+)\s+(minute|hour|day)s?\)")
_RATE_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    """The period of an EventBridge ``rate(value unit)`` schedule in seconds; None for anything
    else (a cron expression, or no schedule).
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html"""
    match = _RATE.fullmatch(expression.strip())
    return int(match.group(1)) * _RATE_UNIT_S[match.group(2)] if match else None


@dataclass
class Template:
    """A parsed template plus the physical identity of each resource in the local account."""

    path: Path
    body: dict[str, Any]
    region: str = "us-east-1"
    account: str = "123456789012"
    parameters: dict[str, str] = field(default_factory=dict)
    _given: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path, parameters: dict[str, str] | None = None) -> Template:
        if not path.is_file():
            raise TemplateError(f"no template at {path}")
        body = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        template = cls(path, body)
        for name, spec in body.get("Parameters", {}).items():
            template.parameters[name] = str(spec.get("Default", ""))
        for name, value in (parameters or {}).items():
            if name not in template.parameters:
                raise TemplateError(f"the template has no parameter {name!r}")
            template.parameters[name] = str(value)
            template._given.add(name)
        return template

    def check_parameters(self, bent: frozenset[str] = frozenset()) -> None:
        """Refuse parameter values CloudFormation would refuse before creating anything: a
        parameter with no value and no default, or a value outside its AllowedValues,
        AllowedPattern, MinLength/MaxLength or MinValue/MaxValue.
        https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html

        ``bent`` names parameters a test deliberately takes past their limits (review timeouts of
        seconds, with the sweeper's schedule compressed to match)."""
        for name, spec in self.body.get("Parameters", {}).items():
            value = self.parameters.get(name, "")
            if name in bent:
                continue
            if "Default" not in spec and name not in self._given:
                raise TemplateError(f"Parameters: [{name}] must have values ({spec.get('Description', '')})")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [str(v) for v in allowed]:
                raise TemplateError(
                    f"parameter {name}={value!r}: allowed values are {', '.join(map(str, allowed))}"
                )
            pattern = spec.get("AllowedPattern")
            if pattern is not None and re.fullmatch(pattern, value) is None:
                why = spec.get("ConstraintDescription", f"it must match {pattern}")
                raise TemplateError(f"parameter {name}={value!r}: {why}")
            if not (int(spec.get("MinLength", 0)) <= len(value) <= int(spec.get("MaxLength", 4096))):
                raise TemplateError(f"parameter {name}={value!r}: length outside MinLength/MaxLength")
            if spec.get("Type") == "Number":
                try:
                    number = float(value)
                except ValueError:
                    raise TemplateError(f"parameter {name}={value!r}: not a number") from None
                low, high = spec.get("MinValue"), spec.get("MaxValue")
                if (low is not None and number < float(low)) or (high is not None and number > float(high)):
                    raise TemplateError(f"parameter {name}={value!r}: must be between {low} and {high}")

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.body["Resources"]
        return resources

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r["Type"] == kind}

    def function_arn(self, logical_id: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{logical_id}"

    def alias(self, logical_id: str) -> str | None:
        """The function's AutoPublishAlias (its own, else the Globals'), or None."""
        own = self.resources[logical_id].get("Properties", {}).get("AutoPublishAlias")
        default = self.body.get("Globals", {}).get("Function", {}).get("AutoPublishAlias")
        name = own if own is not None else default
        return str(name) if name else None

    def alias_arn(self, logical_id: str) -> str:
        """``!Ref Fn.Alias``: SAM's reference to the alias AutoPublishAlias creates (its ARN)."""
        if logical_id not in self.resources:
            raise TemplateError(f"!Ref {logical_id}.Alias: no such function")
        alias = self.alias(logical_id)
        if alias is None:
            raise TemplateError(f"!Ref {logical_id}.Alias: the function has no AutoPublishAlias")
        return f"{self.function_arn(logical_id)}:{alias}"

    def function_version_arn(self, logical_id: str) -> str:
        """``!Ref Fn.Version``: the version AutoPublishAlias published. The local engine deploys
        once, so each function has one published version, ``1``, and its alias points at it."""
        if self.alias(logical_id) is None:
            raise TemplateError(f"!Ref {logical_id}.Version: the function has no AutoPublishAlias")
        return f"{self.function_arn(logical_id)}:{LOCAL_VERSION}"

    def log_group_name(self, logical_id: str) -> str:
        """A log group's LogGroupName; CloudFormation names an unnamed one, the engine by its id."""
        given = self.resources[logical_id].get("Properties", {}).get("LogGroupName")
        return str(self.resolve(given)) if given is not None else logical_id

    def state_machine_arn(self, logical_id: str) -> str:
        return f"arn:aws:states:{self.region}:{self.account}:stateMachine:{logical_id}"

    def state_machine_alias(self, logical_id: str) -> str | None:
        """The state machine's AutoPublishAlias, or None (state machines take no Globals)."""
        name = self.resources[logical_id].get("Properties", {}).get("AutoPublishAlias")
        return str(name) if name else None

    def state_machine_alias_arn(self, logical_id: str) -> str:
        alias = self.state_machine_alias(logical_id)
        if alias is None:
            raise TemplateError(f"{logical_id} has no AutoPublishAlias")
        return f"{self.state_machine_arn(logical_id)}:{alias}"

    def _generated_state_machine_alias(self, name: str) -> str | None:
        """``<Machine>Alias<alias>``, the AWS::StepFunctions::StateMachineAlias SAM generates for a
        state machine's AutoPublishAlias (its Ref is the alias ARN), as the machine it belongs to.
        https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-specification-generated-resources-statemachine.html"""
        for machine in self.of_type("AWS::Serverless::StateMachine"):
            alias = self.state_machine_alias(machine)
            if alias is not None and name == f"{machine}Alias{alias}":
                return machine
        return None

    def _ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "panelbrain-local",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name.endswith(".Alias"):
            return self.alias_arn(name.removesuffix(".Alias"))
        if name.endswith(".Version"):
            return self.function_version_arn(name.removesuffix(".Version"))
        resource = self.resources.get(name)
        machine = self._generated_state_machine_alias(name) if resource is None else None
        if machine is not None:
            return self.state_machine_alias_arn(machine)
        if resource is None:
            raise TemplateError(f"!Ref {name}: no such parameter or resource")
        kind = resource["Type"]
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{self.region}:{self.account}:{name}"
        if kind == "AWS::Serverless::StateMachine":
            return self.state_machine_arn(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}"
        if kind == "AWS::S3::Bucket":
            return name.lower()  # bucket names are lower case
        if kind in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable") and "TableName" in resource.get(
            "Properties", {}
        ):
            return str(self.resolve(resource["Properties"]["TableName"]))  # a named table's Ref is its name
        return str(name)  # tables, functions, buckets: the logical id is the local physical name

    def _get_att(self, name: str, attribute: str) -> str:
        kind = self.resources[name]["Type"]
        if kind == "AWS::Serverless::Function" and attribute == "Arn":
            return self.function_arn(name)
        if kind == "AWS::Serverless::Function" and attribute == "Alias":
            return self.alias_arn(name)
        if kind == "AWS::Serverless::Function" and attribute == "Version.Version":
            self.function_version_arn(name)  # refuses a function without a published version
            return LOCAL_VERSION
        if kind == "AWS::Serverless::StateMachine" and attribute == "Name":
            return name
        if kind == "AWS::SNS::Topic" and attribute == "TopicName":
            return name
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{name.lower()}"
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return name
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            return f"arn:aws:sqs:{self.region}:{self.account}:{name}"
        if kind == "AWS::Logs::LogGroup" and attribute == "Arn":
            return f"arn:aws:logs:{self.region}:{self.account}:log-group:{self.log_group_name(name)}:*"
        if attribute == "Arn":
            return self._ref(name)
        raise TemplateError(f"!GetAtt {name}.{attribute} is not supported by the local engine")

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsics inside ``value`` (recursively)."""
        if isinstance(value, dict):
            if set(value) == {"Ref"}:
                return self._ref(value["Ref"])
            if set(value) == {"Fn::GetAtt"}:
                name, attribute = value["Fn::GetAtt"]
                return self._get_att(name, attribute)
            if set(value) == {"Fn::If"}:
                condition, when_true, when_false = value["Fn::If"]
                return self.resolve(when_true if self.condition(condition) else when_false)
            if set(value) == {"Fn::Sub"}:
                body = value["Fn::Sub"]
                text, names = (body[0], self.resolve(body[1])) if isinstance(body, list) else (body, {})
                return re.sub(
                    r"\$\{([^}!]+)\}",
                    lambda m: str(names[m.group(1)]) if m.group(1) in names else self._sub_one(m.group(1)),
                    text,
                )
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def condition(self, name: str) -> bool:
        """Evaluate one of the template's Conditions (Equals, Not, And, Or, Condition)."""
        conditions = self.body.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"no condition {name!r} in the template")
        return self._truth(conditions[name])

    def _truth(self, expression: Any) -> bool:
        return evaluate_condition(
            expression,
            value=lambda a: str(self.resolve(a)),
            condition=self.condition,
            refuse=lambda what: TemplateError(f"{what} is not supported by the local engine"),
        )

    def _sub_one(self, name: str) -> str:
        if "." in name and not name.startswith("AWS::"):
            resource, attribute = name.split(".", 1)
            return self._get_att(resource, attribute)
        return self._ref(name)

    def definition(self, logical_id: str) -> str:
        """A state machine's ASL with its DefinitionSubstitutions applied."""
        properties = self.resources[logical_id]["Properties"]
        text: str = (self.path.parent / str(properties["DefinitionUri"])).read_text(encoding="utf-8")
        substitutions = self.resolve(properties.get("DefinitionSubstitutions", {}))
        for key, value in substitutions.items():
            text = text.replace("${" + key + "}", str(value))
        leftover = re.search(r"\$\{[A-Za-z0-9_]+\}", text)
        if leftover:
            raise TemplateError(f"{logical_id}: {leftover.group(0)} has no DefinitionSubstitution")
        return text

    def environment(self, logical_id: str) -> dict[str, str]:
        merged: dict[str, Any] = {}
        merged.update(
            self.body.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        )
        merged.update(self.resources[logical_id]["Properties"].get("Environment", {}).get("Variables", {}))
        return {k: str(v) for k, v in self.resolve(merged).items()}

    def handler(self, logical_id: str) -> str:
        return str(self.resources[logical_id]["Properties"]["Handler"])
