"""The Jetti manual-sale payload, validated against Jetti's documented rules before it is sent.

Checked here (spec: importing-orders, facts file §2): `externalId` present; at least one line item;
line `externalId`s unique; every variant has an `externalId` or a `sku`; `quantity` an integer
>= 1; `orderRouting: "manual"` needs `manualRouting: "fulfill"` with an integer `warehouseId` or
`"dropship"` with an integer `dropshipProviderId`. Unmodelled keys (the escape hatch) pass through.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from worker.core.errors import Problem, TransformError
from worker.core.problems import format_path


class _Open(BaseModel):
    # extra="allow": escape-hatch fields are Jetti's business, not ours to refuse.
    model_config = ConfigDict(extra="allow", frozen=True)


class Variant(_Open):
    externalId: StrictStr | None = None
    sku: StrictStr | None = None


class Property(_Open):
    key: StrictStr
    value: StrictStr


class LineItem(_Open):
    externalId: StrictStr = Field(min_length=1)
    name: StrictStr | None = None
    quantity: StrictInt = Field(ge=1)
    price: Decimal = Field(ge=0, allow_inf_nan=False)
    taxable: StrictBool | None = None
    variant: Variant
    properties: list[Property] | None = None
    orderRouting: Literal["automated", "manual", "ignore"] | None = None
    manualRouting: Literal["fulfill", "dropship"] | None = None
    warehouseId: StrictInt | None = None
    dropshipProviderId: StrictInt | None = None


class ShippingLine(_Open):
    code: StrictStr | None = None
    name: StrictStr | None = None
    serviceLevel: StrictStr | None = None
    price: Decimal | None = Field(None, ge=0, allow_inf_nan=False)


class Customer(_Open):
    firstName: StrictStr | None = None
    lastName: StrictStr | None = None
    email: StrictStr | None = None


class ManualSale(_Open):
    externalId: StrictStr = Field(min_length=1)
    saleDefaults: dict[str, Any] | None = None
    customer: Customer | None = None
    lineItems: list[LineItem] = Field(min_length=1)
    shipping: list[ShippingLine] | None = None
    options: dict[str, Any] | None = None


def _rule_problems(sale: ManualSale) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(sale.lineItems):

        def add(field: str, message: str, i: int = i) -> None:
            problems.append(Problem(f"lineItems[{i}].{field}", message))

        first = seen.setdefault(item.externalId, i)
        if first != i:
            add("externalId", f"duplicates lineItems[{first}].externalId {item.externalId!r}")
        if not item.variant.externalId and not item.variant.sku:
            add("variant", "needs an externalId or a sku")
        wid, pid = item.warehouseId, item.dropshipProviderId
        if item.orderRouting == "manual":
            if item.manualRouting == "fulfill":
                if wid is None:
                    add("warehouseId", "required with manualRouting fulfill")
                if pid is not None:
                    add("dropshipProviderId", "not allowed with manualRouting fulfill")
            elif item.manualRouting == "dropship":
                if pid is None:
                    add("dropshipProviderId", "required with manualRouting dropship")
                if wid is not None:
                    add("warehouseId", "not allowed with manualRouting dropship")
            else:
                add("manualRouting", 'must be "fulfill" or "dropship" with orderRouting manual')
        elif item.manualRouting or wid is not None or pid is not None:
            add("orderRouting", 'must be "manual" when routing fields are set')
    return problems


def validate_payload(payload: dict[str, Any]) -> ManualSale:
    """Check `payload` against Jetti's rules. Raises TransformError carrying every problem."""
    try:
        sale = ManualSale.model_validate(payload)
    except ValidationError as exc:
        raise TransformError(
            [Problem(format_path(tuple(e["loc"])), e["msg"]) for e in exc.errors(include_url=False)]
        ) from exc
    problems = _rule_problems(sale)
    if problems:
        raise TransformError(problems)
    return sale
