"""The public vocabularies: chemical groups, effect groups, control status, potency tiers.

These values are a contract used by the API and by checks outside the project: extend them only
by adding members.
"""

from enum import StrEnum


class ChemicalGroup(StrEnum):
    PHENETHYLAMINE = "phenethylamine"
    CATHINONE = "cathinone"
    TRYPTAMINE = "tryptamine"
    LYSERGAMIDE = "lysergamide"
    SYNTHETIC_CANNABINOID = "synthetic_cannabinoid"
    ARYLCYCLOHEXYLAMINE = "arylcyclohexylamine"
    PIPERAZINE = "piperazine"
    AMINOINDANE = "aminoindane"
    PHENIDATE = "phenidate"
    TROPANE = "tropane"
    BENZODIAZEPINE = "benzodiazepine"
    FENTANYL_ANALOGUE = "fentanyl_analogue"
    NITAZENE = "nitazene"
    OTHER_OPIOID = "other_opioid"
    PLANT_BASED = "plant_based"
    OTHER = "other"


class EffectGroup(StrEnum):
    """UNODC's six effect groups plus `not_assigned`; MDMA-type entactogens are stimulants."""

    STIMULANT = "stimulant"
    SYNTHETIC_CANNABINOID_RECEPTOR_AGONIST = "synthetic_cannabinoid_receptor_agonist"
    CLASSIC_HALLUCINOGEN = "classic_hallucinogen"
    DISSOCIATIVE = "dissociative"
    SEDATIVE_HYPNOTIC = "sedative_hypnotic"
    OPIOID = "opioid"
    NOT_ASSIGNED = "not_assigned"


class ControlStatus(StrEnum):
    """International control: the 1961 Single Convention and 1971 Convention schedules."""

    C1961_I = "1961-I"
    C1961_II = "1961-II"
    C1961_IV = "1961-IV"
    C1971_I = "1971-I"
    C1971_II = "1971-II"
    C1971_III = "1971-III"
    C1971_IV = "1971-IV"
    NONE = "none"


class PotencyTier(StrEnum):
    """Typical active dose: extreme < 0.01 mg, very_high < 0.1 mg, high < 1 mg, moderate < 10 mg."""

    EXTREME = "extreme"
    VERY_HIGH = "very_high"
    HIGH = "high"
    MODERATE = "moderate"
    LOW = "low"
    UNKNOWN = "unknown"


# The tiers that make a reference "highly potent" for analogue flags and threat scoring.
HIGHLY_POTENT = frozenset({PotencyTier.EXTREME, PotencyTier.VERY_HIGH})


class Category(StrEnum):
    """Why a reference standard is in the library; cutting agents are not of concern."""

    NPS = "nps"  # new psychoactive substance, reported to an early warning system
    CONTROLLED = "controlled"  # classic drug under international control, not an NPS
    PSYCHOACTIVE_MEDICINE = "psychoactive_medicine"  # diverted or misused medicine
    CUTTING_AGENT = "cutting_agent"  # adulterant, diluent or non-psychoactive medicine

    @property
    def of_concern(self) -> bool:
        return self is not Category.CUTTING_AGENT
