"""One record per TextArena game: what interplay knows about it, in one place.

``GAMES`` maps TextArena's base name (``TowerOfHanoi`` for ``TowerOfHanoi-v0``) to a :class:`Game`:
how many players it has, the line ``interplay list`` shows, the expert that solves it and the move
generator the built-in opponent draws from (where there are ones), or why it cannot be played.
Whether a game runs was measured by ``probe_games()`` with TextArena ``PROBED_VERSION`` on
Python 3.10-3.11; tests/test_textarena.py re-probes every game to keep the records honest.
"""

from __future__ import annotations

from dataclasses import dataclass

from interplay.envs.textarena.experts import (
    Expert,
    guess_expert,
    hanoi_expert,
    mastermind_expert,
    nim_expert,
    rush_hour_expert,
)
from interplay.envs.textarena.opponent import (
    MoveGenerator,
    battleship_moves,
    colonel_blotto_moves,
    connect_four_moves,
    new_recruit_moves,
    nim_moves,
    tak_moves,
    two_dollar_moves,
    ultimate_tic_tac_toe_moves,
    wild_tic_tac_toe_moves,
)

#: The TextArena version the records were measured with.
PROBED_VERSION = "0.7.4"


@dataclass(frozen=True)
class Game:
    """A TextArena game as interplay plays it."""

    players: int  # 1, or 2 (the agent and an opponent the environment plays); 0 when unplayable
    description: str  # one line for list_envs(); two-player games get "(vs ... opponent)" added
    expert: Expert | None = None  # the solver behind expert_action(), if any
    moves: MoveGenerator | None = None  # candidate moves for the built-in opponent, if the rules lack them
    unavailable: str = ""  # why the game cannot be played here ("" when it can)


def unplayable(reason: str) -> Game:
    return Game(0, "", unavailable=reason)


NEEDS_NLTK = "needs the NLTK 'words' corpus (nltk.download('words')), which cannot be downloaded offline"
NEEDS_OPENROUTER = "needs an OpenRouter API key (OPENROUTER_API_KEY) for its LLM judge or opponent"
NEEDS_PY312 = "TextArena's code has f-strings that only Python >= 3.12 parses (SyntaxError on this Python)"

GAMES: dict[str, Game] = {
    "2048": Game(1, "Slide and merge tiles on a 4x4 board until a 2048 tile appears."),
    "Bandit": Game(1, "Multi-armed bandit: press coloured buttons for 20 turns, then name the best one."),
    "Blackjack": Game(1, "Play 5 hands of blackjack against the dealer: hit or stand."),
    "Countdown": Game(1, "Reach a target number by combining six numbers with + - * /."),
    "Crosswords": Game(1, "Fill a small crossword from its clues, one letter at a time."),
    "Cryptarithm": Game(1, "Assign digits to letters so that SEND + MORE = MONEY holds."),
    "FifteenPuzzle": Game(1, "Slide tiles of the 15-puzzle into order (random shuffle; may be unsolvable)."),
    "FrozenLake": Game(1, "Walk across a 4x4 frozen lake to the goal without falling into a hole."),
    "GuessTheNumber": Game(
        1,
        "Guess a number in 1-20 in 10 tries with higher/lower hints.",
        expert=guess_expert,
    ),
    "LightsOut": Game(1, "Toggle lights on a 5x5 grid (a press flips its neighbours) until all are off."),
    "LogicPuzzle": Game(1, "Solve a zebra-style logic grid puzzle from clues."),
    "Mastermind": Game(
        1,
        "Crack a 4-digit code (digits 1-6, no repeats) from black/white peg feedback.",
        expert=mastermind_expert,
    ),
    "Minesweeper": Game(1, "Clear an 8x8 minefield with 10 mines by revealing and flagging cells."),
    "PegJump": Game(1, "Peg solitaire on a triangular board: jump pegs until one is left."),
    "RushHour": Game(
        1,
        "Slide cars on a 6x6 grid to let the red car out (a sliding-block puzzle).",
        expert=rush_hour_expert,
    ),
    "Secretary": Game(1, "The secretary problem: accept or reject 5 candidates seen one at a time."),
    "Set": Game(1, "Find sets of three cards in the card game Set."),
    "Slitherlink": Game(1, "Draw a single loop on a 4x4 Slitherlink grid that satisfies the clues."),
    "Sokoban": Game(1, "Push 3 boxes onto targets in a 6x6 Sokoban room."),
    "Sudoku": Game(1, "Fill a 9x9 Sudoku with 60 given clues."),
    "ThreeCardMonte": Game(1, "Follow the ball under three shuffled cups."),
    "TowerOfHanoi": Game(
        1,
        "Move 3 disks from tower A to tower C, never a larger disk on a smaller one.",
        expert=hanoi_expert,
    ),
    "Alquerque": Game(2, "Alquerque, a draughts-like capture game on a 5x5 lattice, vs an opponent."),
    "Battleship": Game(
        2,
        "Battleship on a 5x5 grid: sink the opponent's fleet first.",
        moves=battleship_moves,
    ),
    "Breakthrough": Game(2, "Breakthrough on 8x8: first to reach the opposite row wins."),
    "Briscola": Game(2, "Briscola, an Italian trick-taking card game."),
    "Chopsticks": Game(2, "Chopsticks finger game: tap hands, split fingers, knock out both hands."),
    "ColonelBlotto": Game(
        2,
        "Colonel Blotto: split 20 units over 3 fields, 9 rounds.",
        moves=colonel_blotto_moves,
    ),
    "ConnectFour": Game(2, "Connect Four on a 6x7 board.", moves=connect_four_moves),
    "Crusade": Game(2, "Crusade, a chess-variant capture game on an 8x8 board."),
    "GameOfPureStrategy": Game(2, "Game of Pure Strategy (GOPS): bid cards for prizes."),
    "GermanWhist": Game(2, "German Whist, a two-player trick-taking card game."),
    "Golf": Game(2, "Golf card game: swap cards to minimise the sum of your grid."),
    "HighSociety": Game(2, "High Society: bid money cards for luxury and prestige cards."),
    "IndianPoker": Game(2, "Indian poker: bet on a card you cannot see, 5 rounds."),
    "IteratedMatchingPennies": Game(2, "Iterated matching pennies, 10 rounds."),
    "IteratedPrisonersDilemma": Game(2, "Iterated prisoner's dilemma with a chat turn, 10 rounds."),
    "IteratedRockPaperScissors": Game(2, "Iterated rock-paper-scissors, 9 rounds."),
    "IteratedTwoThirdsAverage": Game(2, "Guess two thirds of the average, 10 rounds."),
    "IteratedUltimatumGame": Game(2, "Iterated ultimatum game: propose and accept splits of a pool of 50."),
    "KuhnPoker": Game(2, "Kuhn poker (three-card poker), 3 rounds."),
    "LinesOfAction": Game(2, "Lines of Action: connect all your pieces into one group."),
    "LiarsDice": Game(2, "Liar's dice with 5 dice each: bid or call a bluff."),
    "MemoryGame": Game(2, "Memory (concentration) on a 4x4 grid: find more pairs than the opponent."),
    "Nim": Game(
        2,
        "Nim with piles 3, 4, 5: whoever takes the last object wins.",
        expert=nim_expert,
        moves=nim_moves,
    ),
    "Othello": Game(2, "Othello (Reversi) on 8x8."),
    "PigDice": Game(2, "Pig dice game: roll or hold, first to 100 points."),
    "Poker": Game(2, "Texas hold'em poker, 10 hands."),
    "QuantumTicTacToe": Game(2, "Quantum tic-tac-toe with entangled moves and collapse."),
    "SantoriniBaseFixed": Game(2, "Santorini with fixed worker placement: move and build, climb to level 3."),
    "SimpleBlindAuction": Game(2, "Talk, then bid blind for 5 items with private valuations."),
    "SimpleNegotiation": Game(2, "Trade resources by offers and accepts to raise your inventory value."),
    "SimpleTak": Game(2, "Simple Tak on 4x4: build a road across the board."),
    "Snake": Game(2, "Multiplayer snake on a 5x5 grid: eat apples, do not crash."),
    "SpiteAndMalice": Game(2, "Spite and Malice, a competitive patience card game."),
    "Stratego": Game(2, "Stratego on a 10x10 board: capture the flag."),
    "Surround": Game(2, "Surround (Tron): move without hitting a trail."),
    "Tak": Game(2, "Tak on 4x4 with stones and a capstone: build a road.", moves=tak_moves),
    "TicTacToe": Game(2, "Tic-tac-toe on a 3x3 board."),
    "TruthAndDeception": Game(2, "One player states facts, the other must tell the true one from the lie."),
    "TwoDollar": Game(
        2,
        "Negotiate how to split two dollars, with secret role instructions.",
        moves=two_dollar_moves,
    ),
    "UltimateTicTacToe": Game(
        2,
        "Ultimate tic-tac-toe: nine boards, where you play sends the opponent.",
        moves=ultimate_tic_tac_toe_moves,
    ),
    "WildTicTacToe": Game(
        2,
        "Wild tic-tac-toe: place X or O, whoever completes a line wins.",
        moves=wild_tic_tac_toe_moves,
    ),
    "PublicGoodsGame": Game(
        2,
        "Public goods game: talk, then contribute to a multiplied common pot, 3 rounds.",
    ),
    "MarketEntryGame": Game(2, "Market entry game: talk, then enter a crowded market or stay out, 5 rounds."),
    "NewRecruit": Game(2, "New Recruit: a multi-issue job-offer negotiation.", moves=new_recruit_moves),
    "Hangman": unplayable(NEEDS_NLTK),
    "WordLadder": unplayable(NEEDS_NLTK),
    "Wordle": unplayable(NEEDS_NLTK),
    "WordSearch": unplayable(NEEDS_NLTK),
    "DontSayIt": unplayable(NEEDS_NLTK),
    "LetterAuction": unplayable(NEEDS_NLTK),
    "SpellingBee": unplayable(NEEDS_NLTK),
    "WordChains": unplayable(NEEDS_NLTK),
    "Codenames": unplayable(NEEDS_NLTK),
    "GuessWho": unplayable(NEEDS_OPENROUTER),
    "TwentyQuestions": unplayable(NEEDS_OPENROUTER),
    "Debate": unplayable(NEEDS_OPENROUTER),
    "ScenarioPlanning": unplayable(NEEDS_OPENROUTER),
    "Klondike": unplayable(
        "TextArena's Klondike module has a syntax error on this Python (SyntaxError at import)"
    ),
    "Checkers": unplayable(NEEDS_PY312),
    "Chess": unplayable(NEEDS_PY312),
    "IteratedStagHunt": unplayable(NEEDS_PY312),
    "ReverseTicTacToe": unplayable(NEEDS_PY312),
    "UltimateTexasHoldem": unplayable(NEEDS_PY312),
    "UsedCarNegotiation": unplayable(
        "the installed TextArena package lacks its data file instructions/blue_book.txt"
    ),
    "UsedCar": unplayable("registered by TextArena, but its module textarena.envs.UsedCar does not exist"),
    "ScorableGames": unplayable("the installed TextArena package lacks its games_descriptions/ data folder"),
    "BabyAiText": unplayable(
        "needs the old 'gym' package and BabyAI (pip install gym minigrid), not installed"
    ),
    "Taboo": unplayable("needs 4 or more players (an even number); interplay plays 1- and 2-player games"),
    "ThreePlayerTicTacToe": unplayable("needs exactly 3 players; interplay plays 1- and 2-player games"),
    "ThreePlayerGOPS": unplayable("needs exactly 3 players; interplay plays 1- and 2-player games"),
    "ThreePlayerIPD": unplayable("needs exactly 3 players; interplay plays 1- and 2-player games"),
    "CharacterConclave": unplayable("needs 3 to 15 players; interplay plays 1- and 2-player games"),
    "SettlersOfCatan": unplayable("needs exactly 4 players; interplay plays 1- and 2-player games"),
    "SecretMafia": unplayable("needs 5 to 15 players; interplay plays 1- and 2-player games"),
}
