"""How urgent: emergencies that belong with 110/119/120/122 *now*, and service outages that
the SLA rules treat as urgent.

Rules, not a model: a missed gas leak costs lives, a false alarm costs one phone call, and
every hit must say which words triggered it. A signal counts only when it is not negated
("无人受伤", "没有起火") and not clearly about the past or about money afterwards
("去年受伤…医疗费", "工伤赔偿") — those are disputes, not emergencies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import text as tx

#: (pattern, service) — the service that takes it over.
EMERGENCY_SIGNALS: list[tuple[str, str]] = [
    (r"(燃气|煤气|天然气|液化气)(管道?)?(泄漏|泄露|漏气|外泄)"
     r"|闻到(很?浓的?)?(煤气|燃气|天然气)味|漏气", "119"),
    (r"着火|(?<![引一])起火|失火|火灾(?!隐患)|冒(黑)?烟|火势|烧起来|爆炸", "119"),
    (r"(房屋|楼|墙|桥|路面|棚|脚手架|山体|边坡|广告牌)[^，。,]{0,4}(倒塌|坍塌|垮塌|塌了|塌方)"
     r"|塌方|滑坡|泥石流", "119"),
    (r"被困(?!扰)|困在电梯|电梯困人|溺水|落水|掉进(河|水|井)|触电", "119"),
    (r"受伤|流血|昏迷|晕倒|不省人事|抽搐|呼吸困难|心脏病发|中毒|骨折|伤者|重伤"
     r"|生命危险|快不行了", "120"),
    (r"打人|殴打|斗殴|持刀|砍人|行凶|家暴|抢劫|绑架|杀人|强奸|劫持|威胁要杀|跳楼|轻生|要自杀", "110"),
    (r"车祸|交通事故|撞车|撞人|追尾|翻车|肇事逃逸", "122"),
]

#: Outages and hazards: urgent (30 minutes to sign), not an emergency.
URGENT_SIGNALS: list[str] = [
    r"停水|停电|停气|停暖|没有?暖气|断水|断电|没水|没电",
    r"井盖(丢失|缺失|被盗|没了)|路面塌陷|大坑|随时(可能)?(倒塌|坠落|掉落)|高空坠物",
    r"电线(裸露|掉落|垂落|起火)|漏电|水管(爆裂|破裂)|爆管|大量漏水",
]

_NEGATION = re.compile(
    r"(没有|没|无|未|不会|并未|尚未|防止|以防|预防|避免|担心|隐患|如果|万一|以免|易|容易|可能|极易|"
    r"引发|曾|频发|屡|一旦|出了|发生过)[^，。,；;!！?？]{0,6}$")
#: After the signal: it is a risk being described, not a thing happening.
_RISK_AFTER = re.compile(r"^[^，。,；;]{0,6}(隐患|风险|危险|怎么办|谁负责|的可能|事件频发|频发|多发)")
#: Words that say the harm is in the past or the matter is now about money or blame.
_AFTERMATH = re.compile(r"医疗费|医药费|赔偿|赔付|工伤|维权|鉴定|去年|前年|上个月|上月|年前|月前|曾经|当时|"
                        r"索赔|判决|起诉|理赔|事故认定|责任认定")
#: Words that say it is happening now.
_NOW = re.compile(r"正在|现在|刚刚|刚才|马上|赶快|快来|紧急|速来|救命|请立即|立刻")

_emergency_re = [(re.compile(p), service) for p, service in EMERGENCY_SIGNALS]
_urgent_re = [re.compile(p) for p in URGENT_SIGNALS]


@dataclass
class UrgencyVerdict:
    level: str  # normal, urgent or emergency
    services: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)

    @property
    def is_emergency(self) -> bool:
        return self.level == "emergency"


def _hits(pattern: re.Pattern[str], text: str) -> list[str]:
    found = []
    for m in pattern.finditer(text):
        before = text[max(0, m.start() - 8):m.start()]
        if _NEGATION.search(before) or _RISK_AFTER.search(text[m.end():m.end() + 12]):
            continue
        found.append(m.group(0))
    return found


#: A hotline note about something happening now is short; a long narrative that mentions an
#: injury is, on the evidence of message-board data, a complaint about its aftermath.
LIVE_MAX_CHARS = 160
_GAS = re.compile(r"漏气|泄漏|泄露|外泄|味")


def _is_live(text: str, signals: list[str]) -> bool:
    """Happening now: said so, or a short report, or gas (a smell of gas is always now)."""
    if any(_NOW.search(text[max(0, m.start() - 20):m.end() + 20])
           for sig in signals for m in re.finditer(re.escape(sig), text)):
        return True
    if _AFTERMATH.search(text):
        return False
    return len(text) <= LIVE_MAX_CHARS or any(_GAS.search(s) for s in signals)


def assess(title: str, content: str) -> UrgencyVerdict:
    """The urgency the words of a ticket call for, with the words and the services."""
    text = tx.normalize(f"{title or ''}。{content or ''}")
    services: list[str] = []
    signals: list[str] = []
    for pattern, service in _emergency_re:
        hits = _hits(pattern, text)
        if hits:
            signals.extend(hits)
            if service not in services:
                services.append(service)
    if signals and _is_live(text, signals):
        return UrgencyVerdict("emergency", services, list(dict.fromkeys(signals)))
    urgent = [h for p in _urgent_re for h in _hits(p, text)]
    if urgent:  # an emergency word about the past (a dispute) raises nothing
        return UrgencyVerdict("urgent", [], list(dict.fromkeys(urgent)))
    return UrgencyVerdict("normal")


URGENCY_ORDER = {"normal": 0, "urgent": 1, "emergency": 2}


def raise_only(current: str, detected: str) -> str:
    """Routing may raise an operator's urgency, never lower it."""
    return detected if URGENCY_ORDER[detected] > URGENCY_ORDER[str(current)] else str(current)
