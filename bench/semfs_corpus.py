"""A labelled corpus for bench/semfs: prose, notes and code, with queries whose answers are known.

Each *fact* is one answer file: a fact paragraph placed deep inside a longer document (after unrelated
sections), so the answer needs the body, not the first screen. Three queries per fact:

- ``paraphrase``: says the same thing with none of the answer's distinctive words;
- ``term``: names a term or flag the user remembers from the file;
- ``task``: describes a job whose answer is in the body.

Each fact also has a *near-miss distractor*: a file that shares the paraphrase's surface words but is about
something else. Filler files (notes, code, logs of everyday topics) bring the corpus to a few hundred files.
Deterministic: ``generate(seed)`` always writes the same corpus.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FACTS", "Query", "filler_paragraphs", "generate"]


@dataclass(frozen=True)
class Fact:
    path: str
    title: str
    body: str
    term: str
    paraphrase: str
    task: str
    distractor: str


@dataclass(frozen=True)
class Query:
    kind: str
    text: str
    answer: str


FACTS: tuple[Fact, ...] = (
    Fact(
        "ops/tls.md",
        "Web server notes",
        "To renew the TLS certificate run certbot renew --deploy-hook reload-nginx, then check the expiry date "
        "with openssl s_client. Let's Encrypt certificates last ninety days.",
        "--deploy-hook",
        "how do I refresh the HTTPS credential before it lapses",
        "the site will show a security warning next month, what command fixes it",
        "The credential card for the gym lapses in June; refresh it at the front desk before the summer.",
    ),
    Fact(
        "home/boiler.md",
        "House maintenance",
        "The boiler pressure should sit between 1 and 1.5 bar. If it drops, open the filling loop valve under "
        "the boiler slowly until the gauge reads 1.2, then close it. Model: Vaillant ecoTEC 831.",
        "ecoTEC",
        "the radiators are cold and the heating dial shows a low number, what to do",
        "top up the central heating system when the gauge falls",
        "The dial on the oven shows a low number when the radiators of the car are cold in winter.",
    ),
    Fact(
        "pets/cat-food.md",
        "Cat care",
        "Miso is on a renal diet: 40 g of Royal Canin Renal wet food twice a day, no dry kibble, and fresh water "
        "in the ceramic fountain. The vet said to avoid fish-based treats.",
        "Royal Canin Renal",
        "what should our feline eat given her kidney problem",
        "prepare the evening meal for the pet with the special diet",
        "Our feline friends at the shelter eat whatever is donated; the problem is storage space.",
    ),
    Fact(
        "money/taxes-2025.md",
        "Tax notes 2025",
        "Self-assessment deadline is 31 January. Keep the P60 from the employer and the receipts for the home "
        "office allowance (6 pounds a week). Reference number UTR 48213-99021.",
        "UTR 48213-99021",
        "when is the yearly return to the revenue service due",
        "file my income declaration and claim the work-from-home expense",
        "The yearly service for the revenue of the bakery is due at the end of the quarter.",
    ),
    Fact(
        "code/retry.py",
        "retry helper",
        'def retry_with_backoff(fn, attempts=5, base_delay=0.2):\n    """Call fn, sleeping base_delay * 2**n '
        'between failures (exponential backoff with jitter)."""\n    for n in range(attempts):\n        try:\n'
        "            return fn()\n        except TransientError:\n            time.sleep(base_delay * 2 ** n * "
        "random.uniform(0.5, 1.5))\n    raise GiveUp(fn)",
        "retry_with_backoff",
        "routine which pauses increasingly after every unsuccessful go",
        "make a flaky network call try again several times with growing pauses",
        "The attempts at the climbing wall got longer and longer; waits between repeated tries were tiring.",
    ),
    Fact(
        "travel/passport.md",
        "Travel admin",
        "Passport renewal takes about six weeks. Form HM-PR-2 needs two photos signed by a countersignatory who "
        "has known me for two years. Current passport expires 14 March 2027.",
        "HM-PR-2",
        "how many months ahead of a trip overseas should I order new identity papers",
        "replace the travel document that is about to expire",
        "Crossing the road abroad on the trip was easy; papers and identity cards were in the hotel safe.",
    ),
    Fact(
        "garden/tomatoes.md",
        "Vegetable garden",
        "Tomatoes: pinch out the side shoots every week, feed with comfrey liquid once the first truss sets, "
        "and water at the base in the morning to avoid blight. Variety: Sungold F1.",
        "Sungold F1",
        "caring for the red fruit plants in the greenhouse during summer",
        "stop the leaves of my cherry plants from getting the brown fungal disease",
        "The summer greenhouse exhibition showed red fruit bowls and plants in ceramic pots.",
    ),
    Fact(
        "work/oncall.md",
        "On-call runbook",
        "When the queue depth alert fires, first check the consumer lag dashboard, then scale the worker "
        "deployment with kubectl scale deploy/ingest-worker --replicas=12. Page the data team after 30 minutes.",
        "ingest-worker",
        "the backlog of pending jobs keeps growing at night, how do I respond",
        "handle the pager alert about messages piling up",
        "Pending jobs at night: the backlog of laundry keeps growing and the kids respond slowly.",
    ),
    Fact(
        "health/running.md",
        "Training log",
        "Couch to 5k plan: three runs a week, alternating 90 seconds jogging with 2 minutes walking in week one. "
        "Stretch the calves afterwards; the physio warned about shin splints.",
        "shin splints",
        "a novice programme to work up to trotting several kilometres",
        "plan my first weeks of exercise without hurting my lower legs",
        "The kilometres of the new schedule for the bus build up to a few more stops.",
    ),
    Fact(
        "kitchen/sourdough.md",
        "Baking",
        "Feed the starter at 1:5:5 the night before. Bulk ferment 4 hours at 24 C with stretch and folds every "
        "30 minutes, cold retard overnight, bake at 250 C in a Dutch oven, lid off after 20 minutes.",
        "Dutch oven",
        "how to make a crusty naturally leavened loaf",
        "bake bread from the wild yeast culture in the fridge",
        "The crusty loaf of the neighbour's cat naturally sits on the warm windowsill.",
    ),
    Fact(
        "code/config_loader.py",
        "config loader",
        'def load_settings(path):\n    """Read TOML settings; environment variables prefixed APP_ override file '
        'values, and unknown keys raise ConfigError."""\n    data = tomllib.loads(Path(path).read_text())\n'
        "    for key, value in os.environ.items():\n        if key.startswith('APP_'):\n"
        "            data[key[4:].lower()] = value\n    return validate(data)",
        "APP_",
        "where do shell exports take precedence over the preferences document",
        "let deployment set options without editing the settings document",
        "Shell collectors take the preferences of the beach file: precedence goes to rare variables.",
    ),
    Fact(
        "family/birthdays.md",
        "Family dates",
        "Grandma Rose turns 90 on 3 August; the party is at the Willow Tea Rooms, booked for 24 people, deposit "
        "paid. She would like a photo album rather than flowers.",
        "Willow Tea Rooms",
        "where are we celebrating the elderly relative's milestone",
        "organise the present and venue for nan's big anniversary",
        "The elderly milestone marker on the relative trail is where we celebrate reaching the top.",
    ),
    Fact(
        "car/service.md",
        "Car",
        "The Skoda Octavia needs its cambelt changed at 100,000 km; last oil service at 87,400 km by Autofix. "
        "Tyre pressure 2.3 bar front, 2.1 rear. The spare key is in the blue drawer.",
        "cambelt",
        "when must the toothed drive strap inside the motor of the vehicle be swapped",
        "book the garage work that is due soon on the family hatchback",
        "The timing of the component fair: vehicle replaced by the engine of the train this year.",
    ),
    Fact(
        "music/guitar.md",
        "Guitar practice",
        "Drop D tuning: lower the low E string a whole step to D. Practise the riff at 80 bpm with a metronome, "
        "then raise by 5 bpm per day. Strings: Ernie Ball Regular Slinky 10-46.",
        "Regular Slinky",
        "how to retune my electric instrument for heavier metal songs",
        "get faster at the riff without making mistakes",
        "The heavier songs of the choir were set for six voices and one string instrument.",
    ),
    Fact(
        "it/backup.md",
        "Backups",
        "Nightly backups use restic to the B2 bucket aios-home-backup; the retention policy is --keep-daily 7 "
        "--keep-weekly 4. Test a restore monthly with restic restore latest --target /tmp/check.",
        "--keep-weekly",
        "for how many days are old copies of the laptop retained",
        "check that I can actually get my files back from the offsite archive",
        "Old copies of the magazine are kept in the laptop bag before the data is pruned from the shelf.",
    ),
    Fact(
        "school/homework.md",
        "Kids",
        "Maths homework is due every Thursday on the MyMaths portal; spelling test on Fridays. Parents evening "
        "with Mrs Okafor is on 12 November at 17:40 in room B4.",
        "Mrs Okafor",
        "when do I meet the teacher to discuss our child's progress",
        "prepare for the school meeting about how our son is doing",
        "The teacher of the progress bar class discussed our child's drawing of the meeting.",
    ),
    Fact(
        "ops/postgres.md",
        "Database",
        "To reclaim space after the big delete run VACUUM (FULL, ANALYZE) on the events table during the "
        "maintenance window; it locks the table. Autovacuum scale factor is set to 0.05.",
        "VACUUM (FULL, ANALYZE)",
        "the tables grew huge after removing rows, how to shrink them",
        "free disk that the relational store still holds after a mass removal",
        "Huge tables grew in the garden after removing the rows of hedges; how to shrink the patio.",
    ),
    Fact(
        "reading/books.md",
        "Reading list",
        "Next up: The Dispossessed by Ursula K. Le Guin, then Piranesi. Book club meets on the first Tuesday; "
        "this month we discuss Klara and the Sun, chapters 1 to 10.",
        "Piranesi",
        "which story is our literary society going over at the upcoming gathering",
        "get ready for the literature circle this month",
        "The group discussing the novel gathering of birds met at the next lake.",
    ),
    Fact(
        "finance/mortgage.md",
        "House purchase",
        "Fixed rate 4.19% for five years with Nationwide ends in September 2028; early repayment charge is 3% "
        "until then. Overpayments up to 10% a year are allowed without penalty.",
        "early repayment charge",
        "can I clear part of the home loan sooner without a fine",
        "work out whether extra payments on the house debt cost anything",
        "A fine home for the loan of paintings: the gallery pays back some sooner.",
    ),
    Fact(
        "code/rate_limit.go",
        "rate limiter",
        "// TokenBucket allows burst requests up to capacity and refills at rate tokens per second.\n"
        "func (b *TokenBucket) Allow() bool {\n\tb.refill(time.Now())\n\tif b.tokens >= 1 {\n\t\tb.tokens--\n"
        "\t\treturn true\n\t}\n\treturn false\n}",
        "TokenBucket",
        "code that limits how often one caller may hit the service",
        "stop one user from flooding the API with too many calls",
        "The client throttles the engine; calls per second on the phone were limited by the plan.",
    ),
    Fact(
        "home/recycling.md",
        "Bins",
        "Blue bin (paper and card) is collected on alternate Mondays, green bin (garden waste) needs the 2025 "
        "sticker, glass goes to the bank at Tesco. Batteries: the box in the library.",
        "green bin",
        "which day do they empty the cardboard container",
        "get rid of the hedge clippings from the weekend",
        "Paper cardboard models of the day were taken away by the waste of time committee.",
    ),
    Fact(
        "work/interview.md",
        "Hiring",
        "Interview loop for the backend role: 30 min screen, a 90 min pairing exercise on the rate limiter "
        "kata, and a system design round. Use the rubric in the hiring folder; debrief within 24 hours.",
        "pairing exercise",
        "what steps does a candidate for the server-side engineering job go through",
        "run the hiring process for the new developer position",
        "The candidate steps of the server: the side of the engineering building goes through a job.",
    ),
    Fact(
        "health/allergy.md",
        "Allergies",
        "Tom is allergic to peanuts and tree nuts; the EpiPen is in the red pouch in his school bag, expiry "
        "05/2026. Antihistamine: cetirizine 5 ml for mild reactions.",
        "EpiPen",
        "what to do if our boy accidentally swallows something he reacts badly to",
        "pack the emergency medicine for the school trip",
        "Our son eats something by accident: the nuts and bolts of the bike were in the soup.",
    ),
    Fact(
        "code/cache.py",
        "LRU cache",
        'class LRUCache:\n    """Keeps at most `capacity` items; the least recently used is evicted first '
        '(an OrderedDict, move_to_end on every hit)."""\n    def get(self, key):\n'
        "        value = self._data.pop(key)\n        self._data[key] = value\n        return value",
        "move_to_end",
        "a store that forgets the entry nobody has looked at for ages",
        "keep memory bounded by discarding stale lookups",
        "The store forgets the entry of nobody; the longest time anyone looked at the window was noon.",
    ),
    Fact(
        "travel/japan.md",
        "Japan trip",
        "Rail pass: 14-day JR Pass, activate at Narita. Ryokan in Hakone booked for 2 nights (onsen included). "
        "Kyoto: Fushimi Inari at 7am to beat the crowds.",
        "Fushimi Inari",
        "the plan for the spring holiday in the far east with hot springs",
        "which temple to visit early to avoid tourists",
        "The far east of the spring garden has hot plants and a holiday plan for the springs.",
    ),
    Fact(
        "it/wifi.md",
        "Home network",
        "The router is a Fritz!Box 7590; the guest network SSID is Lighthouse-Guest and its password rotates "
        "monthly. Mesh repeater in the attic on channel 36.",
        "Lighthouse-Guest",
        "how do visitors connect to the internet at our place",
        "give a friend access to the wireless without sharing the main key",
        "Visitors connect at our place by the canal; the internet cafe is closed.",
    ),
    Fact(
        "notes/meeting-q3.md",
        "Planning meeting",
        "Decision: we drop the Android tablet app in Q3 and move two engineers to the sync engine. Risks: "
        "offline conflict resolution; owner Priya. Revisit on 1 October.",
        "sync engine",
        "what did we decide about the mobile product line this quarter",
        "find out who owns the risky conflict handling work",
        "The mobile line of the product quarter decided the quarter final of the tennis match.",
    ),
    Fact(
        "diy/shelves.md",
        "DIY",
        "Floating shelves: use 8 mm masonry plugs in the brick wall, the hidden brackets take 25 kg each. "
        "Check for cables with the detector first; the stud finder is in the garage.",
        "masonry plugs",
        "how to fix boards in the living room so they look like they hover",
        "mount storage on the brick without hitting electrics",
        "The boards of the living room wall hover in the museum as if they were fixed.",
    ),
    Fact(
        "code/parse_dates.js",
        "date parsing",
        "// parseLooseDate accepts '3 Aug', '2024-08-03' and 'tomorrow'; returns a Date at local midnight\n"
        "export function parseLooseDate(text, now = new Date()) {\n  if (text === 'tomorrow') return addDays(now, 1)\n"
        "  return fromIso(text) ?? fromDayMonth(text, now.getFullYear())\n}",
        "parseLooseDate",
        "turn human written calendar days into timestamp objects",
        "read dates people type in different formats",
        "Human written calendar pages turned into objects of art at the days of the fair.",
    ),
)

_FILLER_TOPICS = {
    "notes": [
        "the weekly shopping list",
        "ideas for the weekend",
        "the neighbour's party",
        "a podcast episode",
        "the football match",
        "a film review",
        "plans for the attic",
        "the allotment committee",
        "a dentist appointment",
        "the new coffee machine",
    ],
    "work": [
        "the quarterly report",
        "the team offsite",
        "expense claims",
        "the design review",
        "a vendor call",
        "the security training",
        "office seating",
        "the intern project",
        "slide templates",
        "the all-hands",
    ],
    "journal": [
        "a walk by the river",
        "a rainy Sunday",
        "cooking with friends",
        "the long commute",
        "learning to knit",
        "a museum visit",
        "the school concert",
        "a hike in the hills",
        "the village fete",
        "a quiet evening",
    ],
}
_SENTENCES = [
    "We talked about {t} for a while and agreed to come back to it later.",
    "Someone mentioned {t} again, so I wrote down a few thoughts.",
    "The main point about {t} was that nobody had strong opinions.",
    "I should remember {t} when I next see the others.",
    "There was a long discussion of {t}, mostly about timing and who would help.",
    "Nothing urgent came out of {t}, but it was nice to catch up.",
    "A reminder about {t} is on the fridge.",
    "It turned out {t} needed more time than planned.",
    "We might revisit {t} in a few weeks, depending on the weather.",
    "Everyone had a different memory of {t}, which was funny.",
]
_CODE_FILLER = (
    'def {name}(items):\n    """Return the {what} of the items."""\n    total = 0\n    for item in items:\n'
    "        total += item.{field}\n    return total\n"
)


def filler_paragraphs(rng: random.Random, n: int) -> list[str]:
    """Everyday paragraphs unrelated to any fact (padding before the fact, and filler files)."""
    out = []
    for _ in range(n):
        topic = rng.choice([t for ts in _FILLER_TOPICS.values() for t in ts])
        out.append(" ".join(rng.choice(_SENTENCES).format(t=topic) for _ in range(rng.randint(3, 5))))
    return out


def _answer_file(fact: Fact, rng: random.Random) -> str:
    padding = filler_paragraphs(rng, 6)
    if fact.path.endswith((".py", ".go", ".js")):
        comment = "#" if fact.path.endswith(".py") else "//"
        head = "\n".join(f"{comment} {line}" for line in padding[0].split(". "))
        helpers = "\n\n".join(
            _CODE_FILLER.format(
                name=f"helper_{i}",
                what=rng.choice(["sum", "weight", "size"]),
                field=rng.choice(["price", "mass", "count"]),
            )
            for i in range(4)
        )
        if fact.path.endswith(".py"):
            return f"{head}\n\nimport os\nimport random\nimport time\n\n{helpers}\n\n\n{fact.body}\n"
        return f"{head}\n\n{fact.body}\n"
    sections = [f"## {p.split(' for ')[0][:30].strip()}\n\n{p}" for p in padding[:4]]
    return f"# {fact.title}\n\n" + "\n\n".join(sections) + f"\n\n## Details\n\n{fact.body}\n\n" + padding[4] + "\n"


def generate(root: Path, *, seed: int = 7, fillers: int = 240) -> list[Query]:
    """Write the corpus under ``root``; return the labelled queries (answer = path relative to root)."""
    rng = random.Random(seed)
    queries: list[Query] = []
    for i, fact in enumerate(FACTS):
        path = root / fact.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_answer_file(fact, rng))
        distractor = root / "misc" / f"near-miss-{i:02d}.md"
        distractor.parent.mkdir(parents=True, exist_ok=True)
        # A near miss: the paraphrase's own words, in a note about something else.
        echo = ", ".join(w for w in re.findall(r"[A-Za-z]+", fact.paraphrase) if len(w) > 3)
        distractor.write_text(
            f"# Note {i}\n\n{fact.distractor}\n\nClub newsletter, unrelated items: {echo}.\n\n"
            f"{filler_paragraphs(rng, 1)[0]}\n"
        )
        queries += [
            Query("paraphrase", fact.paraphrase, fact.path),
            Query("term", fact.term, fact.path),
            Query("task", fact.task, fact.path),
        ]
    for j in range(fillers):
        folder = rng.choice(list(_FILLER_TOPICS))
        if j % 6 == 5:
            body = "\n\n".join(
                _CODE_FILLER.format(
                    name=f"compute_{j}_{k}",
                    what=rng.choice(["total", "mean", "count"]),
                    field=rng.choice(["size", "price", "weight"]),
                )
                for k in range(3)
            )
            (root / "code").mkdir(parents=True, exist_ok=True)
            (root / "code" / f"util_{j:03d}.py").write_text(body)
            continue
        (root / folder).mkdir(parents=True, exist_ok=True)
        text = "\n\n".join(filler_paragraphs(rng, rng.randint(1, 4)))
        (root / folder / f"{folder}-{j:03d}.md").write_text(f"# {folder.title()} {j}\n\n{text}\n")
    return queries
