"""The stack as CloudFormation receives it, deployment by deployment, for the production checklist.

CloudFormation never sees ``template.yaml``: it gets SAM's transform of it. cfn-lint reads the
source template, not the ASL files behind ``DefinitionUri`` nor ``samconfig.toml``. So a
:class:`Deployment` is SAM's output for one set of parameter values (the defaults under each
``ApiAuth`` mode, and each ``samconfig.toml`` environment) with the Conditions evaluated,
``Fn::If`` resolved and parameters substituted, plus every state machine's ASL with its
``DefinitionSubstitutions`` applied, the way Step Functions receives it.

A reference to a resource that only exists once deployed (a function's ARN, an alias) is rendered
into strings as ``<<LogicalId>>`` or ``<<LogicalId.Attribute>>``, so a check can tell *which*
resource an ASL ``Resource`` or an integration URI points at.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from panelbrain.errors import BadInputError
from panelbrain.local.template import evaluate_condition

# A resource reference inside a rendered string: <<Name>> (Ref) or <<Name.Attr>> (Fn::GetAtt).
REFERENCE = re.compile(r"<<([A-Za-z0-9]+)(?:\.([A-Za-z0-9.]+))?>>")
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")
_PLACEHOLDER = re.compile(r"\$\{[A-Za-z0-9_]+\}")
_NO_VALUE = object()
ACCOUNT = "123456789012"


class StackError(BadInputError):
    """The template, an ASL file or samconfig.toml cannot be read as a deployable stack."""


@dataclass(frozen=True)
class Source:
    """What the checklist reads: the template (parsed, untransformed), ASL files, samconfig."""

    root: Path
    template: dict[str, Any]
    # DefinitionUri path -> parsed ASL document (kept as text-equivalent JSON)
    asl: dict[str, dict[str, Any]]
    # environment name -> (region, parameter overrides)
    environments: dict[str, tuple[str, dict[str, str]]]

    @classmethod
    def load(cls, root: Path) -> Source:
        try:
            from samtranslator.yaml_helper import yaml_parse
        except ImportError:
            raise StackError(
                "the checklist needs SAM's translator (aws-sam-translator): pip install -e '.[dev]'"
            ) from None

        template_path = root / "template.yaml"
        if not template_path.is_file():
            raise StackError(f"no template.yaml in {root}: run from the project root or pass --root")
        template: dict[str, Any] = yaml_parse(template_path.read_text(encoding="utf-8"))
        asl: dict[str, dict[str, Any]] = {}
        for name, resource in template.get("Resources", {}).items():
            uri = resource.get("Properties", {}).get("DefinitionUri")
            if resource.get("Type") == "AWS::Serverless::StateMachine" and isinstance(uri, str):
                path = root / uri
                try:
                    asl[uri] = json.loads(path.read_text(encoding="utf-8"))
                except FileNotFoundError:
                    raise StackError(f"{name}: DefinitionUri {uri} does not exist") from None
                except json.JSONDecodeError as exc:
                    raise StackError(f"{name}: {uri} is not valid JSON ({exc})") from None
        return cls(root, template, asl, _samconfig(root / "samconfig.toml"))

    def parameter_defaults(self) -> dict[str, str]:
        return {
            name: str(spec["Default"])
            for name, spec in self.template.get("Parameters", {}).items()
            if "Default" in spec
        }

    def deployments(self) -> list[Deployment]:
        """Both ApiAuth modes with the defaults, then every samconfig.toml environment."""
        defaults = self.parameter_defaults()
        found = [
            Deployment.build(self, f"defaults (ApiAuth={auth})", "us-east-1", {**defaults, "ApiAuth": auth})
            for auth in ("IAM", "API_KEY")
            if "ApiAuth" in self.template.get("Parameters", {}) or auth == "IAM"
        ]
        for env, (region, overrides) in self.environments.items():
            found.append(Deployment.build(self, f"samconfig {env}", region, {**defaults, **overrides}))
        return found


def _samconfig(path: Path) -> dict[str, tuple[str, dict[str, str]]]:
    if not path.is_file():
        return {}
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    environments: dict[str, tuple[str, dict[str, str]]] = {}
    for env, commands in document.items():
        deploy = commands.get("deploy", {}).get("parameters") if isinstance(commands, dict) else None
        if not isinstance(deploy, dict) or "parameter_overrides" not in deploy:
            continue
        overrides = deploy["parameter_overrides"]
        pairs = overrides if isinstance(overrides, list) else _split_overrides(str(overrides))
        values: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = str(pair).partition("=")
            if not sep:
                raise StackError(f"samconfig.toml [{env}]: parameter override {pair!r} is not Key=Value")
            values[key] = value.strip('"')
        environments[env] = (str(deploy.get("region", "us-east-1")), values)
    return environments


def _split_overrides(text: str) -> list[str]:
    # sam's own format: space-separated Key=Value pairs, values optionally double-quoted.
    return re.findall(r'[A-Za-z0-9]+=(?:"[^"]*"|\S+)', text)


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@dataclass
class Machine:
    """One state machine as Step Functions receives it."""

    name: str
    type: str  # STANDARD or EXPRESS
    definition: dict[str, Any]
    # state name -> (state, the States block it lives in, the enclosing Parallel/Map states)
    states: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def walk(block: dict[str, Any], enclosing: tuple[str, ...]) -> None:
            for name, state in block.get("States", {}).items():
                self.states[name] = (state, block, enclosing)
                for branch in state.get("Branches", []):
                    walk(branch, (*enclosing, name))
                for key in ("ItemProcessor", "Iterator"):
                    if key in state:
                        walk(state[key], (*enclosing, name))

        walk(self.definition, ())

    def tasks(self) -> dict[str, dict[str, Any]]:
        return {name: s for name, (s, _, _) in self.states.items() if s.get("Type") == "Task"}


@dataclass
class Deployment:
    """SAM's output for one set of parameter values, conditions evaluated, ASL substituted."""

    label: str
    region: str
    parameters: dict[str, str]
    parameter_specs: dict[str, dict[str, Any]]
    resources: dict[str, dict[str, Any]]
    # SAM's output before this deployment's values were substituted: which parameter feeds what
    raw_resources: dict[str, dict[str, Any]]
    machines: dict[str, Machine]
    machine_errors: dict[str, str]
    root: Path

    @classmethod
    def build(cls, source: Source, label: str, region: str, parameters: dict[str, str]) -> Deployment:
        output = _transform(source, parameters)
        renderer = _Renderer(parameters, output.get("Conditions", {}), region)
        resources: dict[str, dict[str, Any]] = {}
        for name, body in output.get("Resources", {}).items():
            if "Condition" in body and not renderer.condition(body["Condition"]):
                continue
            resolved = renderer.resolve(body)
            resources[name] = resolved if isinstance(resolved, dict) else {}
        machines, errors = _machines(source, resources)
        return cls(
            label,
            region,
            parameters,
            source.template.get("Parameters", {}),
            resources,
            output.get("Resources", {}),
            machines,
            errors,
            source.root,
        )

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r.get("Type") == kind}

    def properties(self, name: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resources.get(name, {}).get("Properties", {})
        return properties

    @cached_property
    def aliases(self) -> dict[str, tuple[str, str]]:
        """Alias logical id -> (function logical id, alias name)."""
        found: dict[str, tuple[str, str]] = {}
        for name, alias in self.of_type("AWS::Lambda::Alias").items():
            target = REFERENCE.fullmatch(render(alias.get("Properties", {}).get("FunctionName", "")))
            if target:
                found[name] = (target.group(1), str(alias["Properties"].get("Name", "")))
        return found

    @cached_property
    def state_machine_aliases(self) -> dict[str, str]:
        """State machine alias logical id -> the state machine it belongs to (through the version
        its DeploymentPreference or RoutingConfiguration names, as SAM's AutoPublishAlias makes it)."""
        found: dict[str, str] = {}
        for name, alias in self.of_type("AWS::StepFunctions::StateMachineAlias").items():
            properties = alias.get("Properties", {})
            routes = [properties.get("DeploymentPreference", {}), *properties.get("RoutingConfiguration", [])]
            for route in routes:
                version = REFERENCE.fullmatch(render(route.get("StateMachineVersionArn", "")))
                machine = (
                    REFERENCE.fullmatch(render(self.properties(version.group(1)).get("StateMachineArn", "")))
                    if version
                    else None
                )
                if machine:
                    found[name] = machine.group(1)
                    break
        return found

    def invoked(self, text: str) -> list[Invocation]:
        """The Lambda functions a rendered ARN, FunctionName or integration URI invokes."""
        found: list[Invocation] = []
        for match in REFERENCE.finditer(text):
            name, attribute = match.group(1), match.group(2)
            kind = self.resources.get(name, {}).get("Type")
            after = text[match.end() :]
            qualifier = re.match(r":([A-Za-z0-9$_-]+)", after)
            if kind == "AWS::Lambda::Alias" and name in self.aliases:
                function, alias = self.aliases[name]
                found.append(Invocation(function, alias, name))
            elif kind == "AWS::Lambda::Version":
                target = REFERENCE.fullmatch(render(self.properties(name).get("FunctionName", "")))
                found.append(Invocation(target.group(1) if target else name, "version", name))
            elif kind == "AWS::Lambda::Function" and attribute in (None, "Arn"):
                found.append(Invocation(name, qualifier.group(1) if qualifier else None, name))
        if not found and re.search(r"arn:[a-z-]+:lambda:[^:]*:[^:]*:function:", text):
            found.append(Invocation(None, None, text))
        return found


@dataclass(frozen=True)
class Invocation:
    function: str | None  # logical id, or None for a literal ARN the template does not own
    qualifier: str | None  # alias name, "version", a literal qualifier, or None (unqualified)
    via: str  # the logical id (or text) that was referenced


def _transform(source: Source, parameters: dict[str, str]) -> dict[str, Any]:
    """SAM's output for these values; shared between callers, so treat it as read-only."""
    key = json.dumps([source.template, parameters], sort_keys=True, default=str)
    if key not in _TRANSFORMED:
        if len(_TRANSFORMED) >= 64:
            _TRANSFORMED.pop(next(iter(_TRANSFORMED)))
        _TRANSFORMED[key] = _transform_once(source, parameters)
    return _TRANSFORMED[key]


_TRANSFORMED: dict[str, dict[str, Any]] = {}


def _transform_once(source: Source, parameters: dict[str, str]) -> dict[str, Any]:
    try:
        from samtranslator.translator.transform import transform
    except ImportError:
        raise StackError(
            "the checklist needs SAM's translator (aws-sam-translator): pip install -e '.[dev]'"
        ) from None

    template = copy.deepcopy(source.template)
    # Local paths become S3 locations, as `sam deploy` makes them after packaging.
    for section in (template.get("Globals", {}).get("Function", {}), *template.get("Resources", {}).values()):
        properties = section.get("Properties", section) if isinstance(section, dict) else {}
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(properties.get(key), str):
                properties[key] = "s3://bucket/key"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # The transform warns about feature toggles it has no configuration for; not ours to fix.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    try:
        result: dict[str, Any] = transform(template, dict(parameters), _NoManagedPolicies())
    except Exception as exc:  # samtranslator's InvalidDocumentException and friends
        raise StackError(f"SAM refuses the template: {exc}") from None
    return result


def _machines(
    source: Source, resources: dict[str, dict[str, Any]]
) -> tuple[dict[str, Machine], dict[str, str]]:
    machines: dict[str, Machine] = {}
    errors: dict[str, str] = {}
    for name, body in source.template.get("Resources", {}).items():
        kind = body.get("Type")
        if kind not in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            continue
        if name not in resources:
            continue  # its Condition is false in this deployment
        properties = body.get("Properties", {})
        uri = properties.get("DefinitionUri")
        if kind == "AWS::Serverless::StateMachine" and isinstance(uri, str):
            text = json.dumps(source.asl[uri])
        elif isinstance(properties.get("Definition"), dict):
            text = json.dumps(properties["Definition"])
        elif isinstance(properties.get("DefinitionString"), str):
            text = properties["DefinitionString"]
        else:
            errors[name] = (
                "has no local DefinitionUri, Definition or literal DefinitionString the checklist can "
                "read: keep the ASL in a file of this repository"
            )
            continue
        deployed = resources[name].get("Properties", {})
        for key, value in deployed.get("DefinitionSubstitutions", {}).items():
            text = text.replace("${" + key + "}", _json_text(render(value)))
        leftover = _PLACEHOLDER.search(text)
        if leftover:
            errors[name] = (
                f"{leftover.group(0)} in {uri or 'its Definition'} has no DefinitionSubstitution: "
                "Step Functions would receive it literally"
            )
            continue
        try:
            definition = json.loads(text)
        except json.JSONDecodeError as exc:
            errors[name] = f"ASL is not valid JSON once substituted ({exc})"
            continue
        machines[name] = Machine(name, str(deployed.get("StateMachineType", "STANDARD")), definition)
    return machines, errors


def _json_text(value: str) -> str:
    return json.dumps(value)[1:-1]


def render(value: Any) -> str:
    """A resolved value as text; resource references as <<Name>> / <<Name.Attr>>."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return f"<<{value['Ref']}>>"
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        parts = target if isinstance(target, list) else str(target).split(".", 1)
        return f"<<{parts[0]}.{parts[1]}>>"
    return json.dumps(value, sort_keys=True)


class _Renderer:
    """Resolves intrinsics for one deployment: parameters, pseudo parameters, Fn::If, Fn::Sub."""

    def __init__(self, parameters: dict[str, str], conditions: dict[str, Any], region: str) -> None:
        self.parameters = parameters
        self.conditions = conditions
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "panelbrain",
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/panelbrain/id",
        }
        self._truth: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._truth:
            if name not in self.conditions:
                raise StackError(f"the template names condition {name!r} but does not define it")
            self._truth[name] = self._evaluate(self.conditions[name])
        return self._truth[name]

    def _evaluate(self, expression: Any) -> bool:
        return evaluate_condition(
            expression,
            value=lambda a: render(self.resolve(a)),
            condition=self.condition,
            refuse=lambda what: StackError(f"{what} is not supported by the checklist"),
        )

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"Ref"}:
                return self._ref(value["Ref"])
            if set(value) == {"Fn::If"}:
                name, yes, no = value["Fn::If"]
                return self.resolve(yes if self.condition(name) else no)
            if set(value) == {"Fn::Sub"}:
                return self._sub(value["Fn::Sub"])
            if set(value) == {"Fn::Join"}:
                separator, parts = value["Fn::Join"]
                items = self.resolve(parts)
                return separator.join(render(i) for i in items) if isinstance(items, list) else render(items)
            resolved = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not _NO_VALUE}
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not _NO_VALUE]
        return value

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return {"Ref": name}

    def _sub(self, argument: Any) -> str:
        text, variables = (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})
        local = {k: render(self.resolve(v)) for k, v in variables.items()}

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return local[name]
            if "." in name and not name.startswith("AWS::"):
                return f"<<{name}>>"
            return render(self._ref(name))

        return _SUB_VARIABLE.sub(one, str(text))
