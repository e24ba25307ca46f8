"""One way to route incoming OCPP calls: a small method per action, marked ``@answers("Action")``.

Both sides the harness plays route this way: the mock CSMS's default answers
(:class:`harness.ocpp.behaviour.CsmsBehaviour`) and the reference EVSE's answers to the CSMS
(:class:`harness.emulators.evse_handlers.StationHandlers`). A class that derives from
:class:`Answering` collects its marked methods once, when the class is made, into
:attr:`Answering.routes` (action -> function; a subclass may mark a method of its own for an
action its base answers); an instance looks an action up with :meth:`Answering.answer_for`.
Which of the answered actions a version offers is left to the class.
"""

from __future__ import annotations

import types
from typing import Any, Callable, ClassVar, Mapping, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

#: the attribute @answers puts the actions on
_MARK = "__ocpp_answers__"


def answers(*actions: str) -> Callable[[_F], _F]:
    """Mark a method as the answer to ``actions``."""

    def mark(method: _F) -> _F:
        setattr(method, _MARK, (*getattr(method, _MARK, ()), *actions))
        return method

    return mark


def answer_table(cls: type) -> dict[str, Callable[..., Any]]:
    """Action -> the function answering it, over ``cls`` and its bases. Within a class the later
    of two marks for an action wins; a subclass's mark wins over its bases'."""
    table: dict[str, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            for action in getattr(value, _MARK, ()):
                table[action] = value
    return table


class Answering:
    """Base of a class whose methods answer actions (see the module docstring)."""

    #: action -> the (unbound) function answering it, built when the class is made
    routes: ClassVar[Mapping[str, Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.routes = answer_table(cls)

    def answer_for(self, action: str) -> Callable[..., Any] | None:
        """The method answering ``action``, bound to this instance; None when nothing answers it."""
        function = self.routes.get(action)
        return None if function is None else types.MethodType(function, self)
