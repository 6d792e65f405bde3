"""The offline default dataset: customer-support messages, generated.

A lifecycle demo needs data that is labelled, varied and learnable without a
network. Each message is assembled from class-specific intents, objects and
details plus shared openers, closers, names and typos, so that classes share
vocabulary and a model must read the message rather than one keyword; a
share of messages digress into another topic, and a few labels are wrong, as
in real tickets. The same seed always yields the same rows.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mlops.core.errors import MlopsError
from mlops.core.io import atomic_path
from mlops.core.stage_io import StageIO

if TYPE_CHECKING:
    from mlops.core.settings import Settings

OPENERS = [
    "Hi,", "Hello team,", "Good morning.", "Hey there,", "Dear support,", "Hi again,", "Quick question:",
    "Sorry to bother you, but", "Urgent:", "", "", "", "Hello, this is {name}.", "{name} here.",
]
CLOSERS = [
    "Thanks.", "Thank you in advance.", "Please advise.", "Can someone help?", "Regards, {name}.",
    "Looking forward to your reply.", "This is the second time I write.", "Cheers!", "", "", "",
    "I need this sorted today.", "Appreciate it.",
]
NAMES = ["Ana", "Bilal", "Chen", "Dana", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kofi", "Lena",
         "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara"]
TIMES = ["yesterday", "last week", "this morning", "two days ago", "on Monday", "since Friday",
         "three weeks ago", "a month ago", "earlier today", "last night"]
PRODUCTS = ["the headphones", "my new laptop", "the coffee machine", "the running shoes", "the desk lamp",
            "the phone case", "the office chair", "the blender", "the camera", "the backpack"]

# Per class: (templates, slot vocabularies). Slots shared across classes
# ({product}, {time}, {name}) keep the classes from being separable by one word.
CLASSES: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "billing": (
        [
            "I was charged {amount} twice for {product} {time}.",
            "My invoice shows {amount} but the price was lower, can you {action}?",
            "Why did my {payment} get declined when I tried to pay for {product}?",
            "Please {action}, the {doc} for {time} looks wrong.",
            "I still have not received the refund of {amount} for {product}.",
            "There is an unexpected {fee} on my statement, it appeared {time}.",
            "Can I change the {payment} used for my subscription?",
            "The {doc} lists a {fee} I never agreed to.",
        ],
        {
            "amount": ["$19.99", "$45", "EUR 120", "$7.50", "GBP 60", "$249", "$12"],
            "action": ["issue a refund", "correct the invoice", "cancel the charge", "explain the fee",
                       "send a credit note", "reverse the payment"],
            "payment": ["credit card", "debit card", "PayPal account", "bank transfer", "gift card"],
            "doc": ["invoice", "receipt", "billing statement", "monthly bill", "payment confirmation"],
            "fee": ["late fee", "service charge", "currency conversion fee", "renewal charge", "tax amount"],
        },
    ),
    "delivery": (
        [
            "My order with {product} has not arrived, it was due {time}.",
            "The tracking number says {status} but nothing came.",
            "{product} arrived {damage}, what should I do?",
            "Can you {action} for my order? I will not be home {when}.",
            "The courier {courier_issue} {time}.",
            "Where is my package? The {carrier} page last updated {time}.",
            "I received the wrong item instead of {product}.",
            "Is it possible to {action} before it ships?",
        ],
        {
            "status": ["delivered", "out for delivery", "held at depot", "in transit", "returned to sender"],
            "damage": ["with a broken box", "crushed", "wet and damaged", "with parts missing", "opened"],
            "action": ["change the delivery address", "reschedule the delivery", "send it to a pickup point",
                       "hold the parcel", "upgrade to express shipping"],
            "when": ["on Thursday", "this week", "until Monday", "tomorrow", "during the day"],
            "courier_issue": ["left the parcel outside in the rain", "never rang the bell",
                              "marked it delivered without coming", "was rude at the door",
                              "left it with a neighbour I do not know"],
            "carrier": ["courier", "shipping", "tracking", "post office", "logistics"],
        },
    ),
    "technical": (
        [
            "{product} keeps {symptom} after the latest update.",
            "The app shows error {code} when I try to {task}.",
            "I cannot {task}, the screen just {symptom2}.",
            "{product} will not {task2}, it started {time}.",
            "The {component} stopped working and I already tried {fix}.",
            "Every time I {task} the app crashes with code {code}.",
            "How do I fix {product} {symptom}? {fix} did not help.",
        ],
        {
            "symptom": ["disconnecting from bluetooth", "overheating", "restarting", "freezing",
                        "draining the battery", "losing wifi"],
            "code": ["E42", "0x80070005", "503", "ERR_TIMEOUT", "E-1002", "404"],
            "task": ["sync my data", "log in to the app", "pair the device", "install the firmware",
                     "export my files", "connect to wifi"],
            "symptom2": ["goes black", "freezes", "keeps loading", "flickers", "shows a spinning wheel"],
            "task2": ["turn on", "charge", "connect", "update", "boot"],
            "component": ["touchscreen", "charging port", "microphone", "bluetooth module", "power button",
                          "firmware updater"],
            "fix": ["a factory reset", "reinstalling the app", "a different cable", "restarting it",
                    "updating the drivers"],
        },
    ),
    "account": (
        [
            "I forgot my password and the {reset} never arrives.",
            "Please {action} for my account.",
            "Someone {security} on my account {time}.",
            "How can I {action}? I cannot find the option.",
            "My account is {locked} after too many attempts.",
            "I want to change the {field} on my profile.",
            "The two-factor code stopped working {time}.",
            "Can you merge my two accounts, one uses my old {field}?",
        ],
        {
            "reset": ["reset email", "verification code", "confirmation link", "SMS code"],
            "action": ["delete all my data", "close my account", "change my username", "update my email address",
                       "turn off marketing emails", "download my personal data"],
            "security": ["logged in from another country", "changed my password", "added a new device",
                         "tried to access my profile"],
            "locked": ["locked", "suspended", "disabled", "blocked"],
            "field": ["email address", "phone number", "username", "display name", "date of birth"],
        },
    ),
    "feedback": (
        [
            "Just wanted to say {praise}, {product} is {adjective}.",
            "I think the app would be better with {feature}.",
            "{praise}! The support from {name} was {adjective}.",
            "Suggestion: please add {feature}.",
            "Honestly {product} is {negative} and I expected more.",
            "Your new design is {adjective}, but {feature} would make it perfect.",
            "I became a customer {time} and {praise}.",
        ],
        {
            "praise": ["great job", "thank you so much", "I love your service", "well done",
                       "you made my day", "big thanks to the team"],
            "adjective": ["fantastic", "excellent", "really helpful", "amazing", "very intuitive", "superb"],
            "feature": ["a dark mode", "offline support", "more colour options", "a family plan",
                        "an export to spreadsheet", "faster checkout", "a loyalty program"],
            "negative": ["disappointing", "not what I hoped", "a bit underwhelming", "mediocre"],
        },
    ),
}

# The shifted variant: the same five classes a year later, when the company
# sells streaming subscriptions and smart-home gadgets and customers write
# short chat messages. New products, new vocabulary, new phrasing: a model
# trained on the original corpus has seen almost none of these words.
SHIFTED_OPENERS = ["yo", "hey", "fyi", "@support", "ok so", "hiya", "quick one -", "", "", "", "ugh,", "{name} again,"]
SHIFTED_CLOSERS = ["thx", "ty", "pls fix", "asap pls", "lmk", "cheers m8", "", "", "", "smh", "!!", "kthx"]
GADGETS = ["the doorbell cam", "my smart plug", "the thermostat hub", "the streaming stick", "my e-scooter",
           "the robot vacuum", "the smart speaker", "the VR headset", "the baby monitor", "my smartwatch"]
MOMENTS = ["since the weekend", "all day", "for ages", "since update 4.2", "this arvo", "since I moved flat",
           "rn", "every evening", "since the promo ended", "after the outage"]
SHIFTED_CLASSES: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "billing": (
        [
            "my {plan} sub renewed at {price} without asking, want that back",
            "got debited {price} twice on {wallet} for {product}",
            "promo code {promo} didnt apply so I paid full whack",
            "why is the {plan} tier {price} now, it was cheaper {time}",
            "cancelled my {plan} plan but you still took {price} via {wallet}",
            "can u split the {price} for {product} into instalments",
            "the {plan} bundle price on my statement isnt what the ad said",
        ],
        {
            "plan": ["Premium", "Family", "Ultra HD", "Student", "annual", "Duo", "Plus"],
            "price": ["14.99", "9 quid", "30 bucks", "AUD 22", "CHF 18", "a tenner"],
            "wallet": ["Apple Pay", "Google Pay", "Klarna", "my Revolut", "Venmo", "my Monzo card"],
            "promo": ["SPRING24", "WELCOME10", "BLACKFRI", "FAMILY3"],
        },
    ),
    "delivery": (
        [
            "{product} still stuck at the {locker} locker {time}",
            "drone drop for {product} got cancelled again",
            "locker pin {pin} expired before I could grab {product}",
            "rider says dropped {product} at {place} but nope",
            "can the van leave {product} at {place} instead",
            "click and collect for {product} says ready but shop says no",
            "{product} box turned up dented and soggy {time}",
        ],
        {
            "locker": ["InPost", "Amazon Hub", "DHL Packstation", "corner shop", "train station"],
            "pin": ["4471", "0932", "7788", "1206"],
            "place": ["the concierge", "my back gate", "the parcel room", "next door", "the garage"],
        },
    ),
    "technical": (
        [
            "{product} wont pair with {device} {time}",
            "streams keep buffering on {device} even on fibre",
            "subtitles out of sync on {device} after casting",
            "{product} firmware bricked itself mid install",
            "{device} app just black screens when I hit play",
            "{product} drops off the mesh network {time}",
            "voice commands to {product} do nothing, led just blinks {colour}",
        ],
        {
            "device": ["my Roku", "the Chromecast", "the Fire TV", "my PS5", "the LG TV", "my iPad", "the Xbox"],
            "colour": ["orange", "red", "purple", "white"],
        },
    ),
    "account": (
        [
            "face id login stopped letting me in {time}",
            "some rando is streaming on my login from {city}",
            "kids profile shows all my watch history, how do I lock it",
            "passkey not accepted on {device}, cant get in",
            "pls wipe my profile and everything u store, GDPR",
            "how do I kick {city} devices off my household",
            "need to swap the profile owner to my partner",
        ],
        {
            "city": ["Lagos", "Jakarta", "Lima", "Oslo", "Manila", "Kyiv"],
            "device": ["my Pixel", "the new iPhone", "my Galaxy", "the smart TV"],
        },
    ),
    "feedback": (
        [
            "loving the new {show} picks, spot on",
            "the redesign is a mess tbh, bring back the old {screen}",
            "would defo pay extra for {wish}",
            "5 stars, setting up {product} took like a minute",
            "the {show} section feels {mood} lately",
            "big up whoever built the {screen}, so smooth",
            "honestly {wish} would make me stay",
        ],
        {
            "show": ["anime", "true crime", "k-drama", "cooking", "nature doc"],
            "screen": ["home tab", "watchlist", "remote app", "setup wizard", "widget"],
            "wish": ["offline downloads on the TV", "a no-ads tier", "shared watch parties", "4K on the cheap plan"],
            "mood": ["stale", "repetitive", "fresh", "so much better"],
        },
    ),
}

# Real labels are noisy and real messages wander off topic; a corpus without
# either would let any model score 100% and make the gate meaningless.
DISTRACTOR_SHARE = 0.2
LABEL_NOISE = 0.03

TYPOS = {"the": "teh", "receive": "recieve", "account": "acount", "password": "pasword", "order": "oder",
         "please": "pls", "because": "becuase", "again": "agian"}


def _fill(template: str, vocab: dict[str, list[str]], rng: random.Random, shifted: bool = False) -> str:
    slots = {"product": GADGETS if shifted else PRODUCTS, "time": MOMENTS if shifted else TIMES, "name": NAMES,
             **vocab}
    values = {key: rng.choice(options) for key, options in slots.items()}
    return template.format(**values)


def _add_noise(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    if rng.random() < 0.25:
        words = [TYPOS.get(word, word) if rng.random() < 0.5 else word for word in words]
    text = " ".join(words)
    if rng.random() < 0.15:
        text = text.lower()
    if rng.random() < 0.05:
        text = text.upper()
    return text


def generate_message(label: str, rng: random.Random, shifted: bool = False) -> str:
    catalogue = SHIFTED_CLASSES if shifted else CLASSES
    templates, vocab = catalogue[label]
    body = [_fill(rng.choice(templates), vocab, rng, shifted)]
    if rng.random() < 0.3:
        body.append(_fill(rng.choice(templates), vocab, rng, shifted))
    if rng.random() < DISTRACTOR_SHARE:  # a side remark about another topic
        other_templates, other_vocab = catalogue[rng.choice([c for c in catalogue if c != label])]
        aside = _fill(rng.choice(other_templates), other_vocab, rng, shifted)
        body.append(f"{'also' if shifted else 'Also,'} {aside[0].lower()}{aside[1:]}")
    opener = rng.choice(SHIFTED_OPENERS if shifted else OPENERS).format(name=rng.choice(NAMES))
    closer = rng.choice(SHIFTED_CLOSERS if shifted else CLOSERS).format(name=rng.choice(NAMES))
    return _add_noise(" ".join(part for part in [opener, *body, closer] if part), rng)


def generate_corpus(rows: int, classes: tuple[str, ...] | list[str], seed: int,
                    variant: str = "original") -> pd.DataFrame:
    """Return `rows` distinct (text, label) rows, balanced over `classes` up to the label noise.

    `variant="shifted"`: the same classes in the new products' vocabulary and the customers' new phrasing
    (the loop's benchmark and tests: served traffic that has drifted, in the same label space).
    """
    if variant not in ("original", "shifted"):
        raise MlopsError(f"generate: unknown variant {variant!r} (original or shifted)")
    unknown = sorted(set(classes) - set(CLASSES))
    if unknown:
        raise MlopsError(
            f"data.generated.classes: unknown class(es) {unknown}; the generator knows {sorted(CLASSES)}"
        )
    rng = random.Random(seed)
    seen: set[str] = set()
    records: list[dict[str, str]] = []
    attempts = 0
    while len(records) < rows:
        label = classes[len(records) % len(classes)]
        text = generate_message(label, rng, variant == "shifted")
        attempts += 1
        if attempts > rows * 50:
            raise MlopsError(f"data.generated.rows: cannot make {rows} distinct messages; ask for fewer")
        if text in seen:
            continue
        seen.add(text)
        if rng.random() < LABEL_NOISE:
            label = rng.choice([c for c in classes if c != label])
        records.append({"text": text, "label": label})
    frame = pd.DataFrame.from_records(records)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


class GenerateIO(StageIO):
    """The corpus CSV the stage writes."""

    stage = "generate"
    out: Path


def run(settings: Settings, io: GenerateIO, variant: str = "original", rows: int | None = None,
        seed: int | None = None) -> pd.DataFrame:
    """Write data.generated's corpus (or its shifted variant); `rows` and `seed` replace the params' values."""
    classes = settings.data.generated.classes
    frame = generate_corpus(rows or settings.data.generated.rows, classes, settings.seed if seed is None else seed,
                            variant)
    with atomic_path(io.out) as tmp:
        frame.to_csv(tmp, index=False)
    print(f"generate: {len(frame)} {variant + ' ' if variant != 'original' else ''}rows over {len(classes)} "
          f"classes -> {io.out}")
    return frame
