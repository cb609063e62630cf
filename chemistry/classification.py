"""Chemical group by SMARTS rules in priority order, each answer naming the rule that matched."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from rdkit import Chem

from chemistry.effects import (
    GROUP_EFFECT,
    GROUP_WEIGHT,
    EffectPrediction,
    TanimotoNeighboursClassifier,
    combine_effect,
)
from chemistry.types import Mol
from chemistry.vocabulary import ChemicalGroup

__all__ = [  # the effect-group half lives in chemistry.effects; re-exported for one entry point
    "GROUP_EFFECT",
    "GROUP_WEIGHT",
    "RULES",
    "EffectPrediction",
    "GroupMatch",
    "TanimotoNeighboursClassifier",
    "chemical_group",
    "combine_effect",
    "matching_groups",
]

G = ChemicalGroup

# Non-acyl, non-sulfonyl, non-aryl amine nitrogen: amides, ureas, sulfonamides and anilines are
# not the basic nitrogen these classes are defined by.
AMINE = "[NX3;!$(N-[CX3]=[O,S,N]);!$(N-S(=O)=O);!$(N-a);!$(N#*);!$(N=*)]"
# An open-chain carbon that is not an amino acid's alpha carbon (phenylalanine, tryptophan,
# levodopa are not phenethylamines or tryptamines in any drug-control sense).
CHAIN_ALPHA = "[CX4;!R;!$(C-[CX3](=O)[OX2H1,OX1-,OX2])]"

# 6H-benzo[c]chromene with a 1-oxygen and a 3-side chain: the classical cannabinoid skeleton.
# Plant cannabinoids and their semi-synthetic analogues carry a straight 3-alkyl; the synthetic
# series (HU-210, nabilone, DMHP) a branched one or the 6a,10a double bond of parahexyl.
_CHROMENE = (
    "[OX2;R]1-c2:c:c(-{side}):c:c(-[OX2]):c:2-[#6;R]2~[#6;R]~[#6;R]~[#6;R]~[#6;R]~[#6;R]{closure}2"
    "-C-1(-C)-C"
)

# A benzene ring, alone or fused only to a saturated O-heterocycle (methylenedioxy), not to
# another aromatic ring (quinolones, naphthalenes).
_BENZENE_ATOM = "[c;R1,$(c-[O;R])]"
_PHENYL = f"{_BENZENE_ATOM}1" + f":{_BENZENE_ATOM}" * 5 + ":1"

# (group, rule name, SMARTS), in priority order: the first rule that matches decides. The
# order puts the more specific skeleton first where one class contains another's pattern:
# lysergamides contain a tryptamine, nitazenes and fentanyls are opioids, MT-45 and AP-237
# contain a piperazine, classical cannabinoids would otherwise fall to plant_based.
RULES: tuple[tuple[ChemicalGroup, str, str], ...] = (
    (
        G.LYSERGAMIDE,
        "ergoline-8-carboxamide",
        "[#6](=O)(~[#7])[#6]1~[#6]~[#7]~[#6]2~[#6]~[#6]3~[#6]~[#7]~[#6]4~[#6]~[#6]~[#6]~[#6]"
        "(~[#6]~3~4)~[#6]~2~[#6]~1",
    ),
    (
        G.NITAZENE,
        "2-benzyl-1-(2-aminoethyl)benzimidazole",
        f"c1ccc2c(c1)nc(-[CH2]-c3ccccc3)n2-[CH2]-[CH2]-{AMINE}",
    ),
    (
        G.FENTANYL_ANALOGUE,
        "4-anilidopiperidine",
        "[#6](=O)-[NX3](-a)-[CX4;R1]1-[CX4;R1]-[CX4;R1]-[NX3;R1]-[CX4;R1]-[CX4;R1]-1",
    ),
    (
        G.OTHER_OPIOID,
        "morphinan",
        "c1ccc2c(c1)[#6]13~[#6]~[#6]~[#6]~[#6]~[#6]~1~[#6](~[#6]~2)~[#7]~[#6]~[#6]~3",
    ),
    (
        G.OTHER_OPIOID,
        "4-arylpiperidine or -azepane with a 4-carbonyl or 4-acyloxy (pethidine, prodines)",
        "c-[CX4;R1]1(-[$([CX3](=O)[OX2,#6]),$([OX2][CX3]=O)])-[CX4;R1]-[CX4;R1]-[NX3;R1]"
        "-[CX4;R1]-[CX4;R1]-1",
    ),
    (
        G.OTHER_OPIOID,
        "4-arylazepane with a 4-carbonyl or 4-acyloxy (ethoheptazine, proheptazine)",
        "c-[CX4;R1]1(-[$([CX3](=O)[OX2,#6]),$([OX2][CX3]=O)])-[CX4;R1]-[CX4;R1]-[NX3;R1]"
        "-[CX4;R1]-[CX4;R1]-[CX4;R1]-1",
    ),
    (
        G.OTHER_OPIOID,
        "6,7-benzomorphan (pentazocine, phenazocine, metazocine)",
        "c1cccc2c1-[CX4]3-[CX4]-[CX4]-[NX3]-[CX4](-[CX4]-2)-[CX4]-3",
    ),
    (
        G.OTHER_OPIOID,
        "N-aryl-N-(2-aminoalkyl)propanamide (ampromides, propiram)",
        f"[CH3]-[CH2]-[CX3](=O)-[NX3](-a)-[CX4]-[CX4]-{AMINE}",
    ),
    (
        G.OTHER_OPIOID,
        "1,1-di(2-thienyl)but-1-en-3-amine (thiambutenes)",
        f"[CX3](-c1cccs1)(-c1cccs1)=[CX3]-[CX4]-{AMINE}",
    ),
    (
        G.OTHER_OPIOID,
        "alpha-benzyl-alpha-phenyl aminopropyl ester (propoxyphene)",
        f"[CX4](-[OX2]-[CX3]=O)(-c)(-[CH2]-c)-[CX4]-[CH2]-{AMINE}",
    ),
    (
        G.OTHER_OPIOID,
        "1-aryl-2-aminocyclohexene-1-carboxylate (tilidine)",
        f"c-[CX4;R1]1(-[CX3](=O)-[OX2])-[CX4;R1](-{AMINE})-[#6;R1]~[#6;R1]-[#6;R1]-[#6;R1]-1",
    ),
    (
        G.OTHER_OPIOID,
        "N-(2-aminocyclohexyl)benzamide or acetamide (U-47700 type)",
        f"[CX3](=O)(-[#6])-[NX3]-[CX4;R1]1-[CX4;R1](-{AMINE})-[CH2]-[CH2]-[CH2]-[CH2]-1",
    ),
    (
        G.OTHER_OPIOID,
        "N-[(1-aminocyclohexyl)methyl]benzamide (AH-7921 type)",
        f"[CX3](=O)(-c)-[NX3]-[CH2]-[CX4;R1]1(-{AMINE})-[CH2]-[CH2]-[CH2]-[CH2]-[CH2]-1",
    ),
    (
        G.OTHER_OPIOID,
        "2,2-diphenyl-4-aminobutyl ketone, carbinol, amide or nitrile (methadone, moramide type)",
        f"[$([CX3]=O),$([CX4]-[OX2]),$(C#N)]-[CX4](-c1ccccc1)(-c1ccccc1)-[CX4]-[CX4]-{AMINE}",
    ),
    (
        G.OTHER_OPIOID,
        "1-aryl-2-(aminomethyl)cyclohexanol (tramadol type)",
        f"c-[CX4;R1]1(-[OX2])-[CX4;R1](-[CH2]-{AMINE})-[CH2]-[CH2]-[CH2]-[CH2]-1",
    ),
    (
        G.OTHER_OPIOID,
        "1-acyl-4-cinnamylpiperazine (AP-237 type)",
        "[CX3](=O)(-[CX4])-[NX3;R1]1-[CX4;R1]-[CX4;R1]-[NX3;R1](-[CH2]-[CH]=[CH]-c)-[CX4;R1]-[CX4;R1]-1",
    ),
    (
        G.OTHER_OPIOID,
        "1-cyclohexyl-4-(1,2-diphenylethyl)piperazine (MT-45 type)",
        "[CX4;R1]1(-[NX3;R1]2-[CH2]-[CH2]-[NX3;R1](-[CH1](-c)-[CH2]-c)-[CH2]-[CH2]-2)"
        "-[CH2]-[CH2]-[CH2]-[CH2]-[CH2]-1",
    ),
    (
        G.OTHER_OPIOID,
        "1-[1-(1- or 2-arylethyl)piperidin-4-yl]benzimidazol-2-one (brorphine type)",
        "O=c1[nX3]c2ccccc2n1-[CX4;R1]1-[CH2]-[CH2]-[NX3;R1](-[$([CH1](-[CH3])-c),$([CH2]-[CH2]-c)])"
        "-[CH2]-[CH2]-1",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "3-carbonyl or 3-arylmethyl indole, indazole or azaindole with an N1 tail",
        "[$([CX3]=O),$([CH2]-c1cccc2ccccc12)]-c1:[c,n]:n(-[CX4;!$([CH3])]~[#6,#7,#8]):c2:[c,n]:c:c:c:c:1:2",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "indole/indazole-3-carboxamide of a valine or tert-leucine ester or amide (tail-less)",
        "[CX3](=O)(-[NH1]-[CX4H1](-[CX3](=O)-[OX2,NX3])-[CX4])-c1:[c,n]:[nX3]:c2:c:c:c:c:c:1:2",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "indole-3-acetamide with an N1 tail (ADB-FUBIATA type)",
        "[CX3](=O)(-[NX3])-[CH2]-c1:c:n(-[CH2]~[#6]~[#6,#8,#7,F,Cl,Br]):c2:c:c:c:c:c:1:2",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "2-carbonyl-1-alkylbenzimidazole (FUBIMINA type)",
        "[CX3](=O)-c1:n:c2:c:c:c:c:c:2:n:1-[CH2]~[#6]~[#6]",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "1-naphthoylnaphthalene (CB-13 type)",
        "O=C(-c1cccc2ccccc12)-c1cccc2ccccc12",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "quinolin-8-yl 3-sulfamoylbenzoate (QMPSB type)",
        "[CX3](=O)(-O-c1:c:c:c:c2:c:c:c:n:c:1:2)-c1:c:c:c:c(-S(=O)(=O)-N):c:1",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "1-alkyl-aryl-pyrazole carboxamide (CHMFUPPYCA type)",
        "[CX3](=O)(-[NX3])-c1:c:c(-c):n:n:1-[CH2]~[#6]",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "1-alkyl-aryl-pyrazole-3-carboxamide (5,3-CHMFUPPYCA type)",
        "[CX3](=O)(-[NX3])-c1:c:c(-c):n(-[CH2]~[#6]):n:1",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "2-(3-hydroxycyclohexyl)-5-(1,1-dimethylalkyl)phenol (CP-47,497 type)",
        "[OX2H1]-c1:c:c(-C(-[CH3])(-[CH3])-[CH2]):c:c:c:1-[CX4;R1]1-[CX4;R1]-[CX4;R1]-[CX4;R1]"
        "-[CX4;R1]-[CX4;R1]-1",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "3-aroyl-1-alkylpyrrole (JWH-030 type)",
        "[CX3](=O)(-a)-c1:c:n(-[CH2]~[#6]~[#6]):c:c:1",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "3-carbonyl-9-alkylcarbazole (EG-018, MDMB-CHMCZCA type)",
        "[CX3](=O)-c1:c:c:c2:c(:c:1):c1:c:c:c:c:c:1:n:2-[CH2]~[#6]~[#6]",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "5-alkyl-pyrido[4,3-b]indol-1-one (gamma-carbolinone, CUMYL-PEGACLONE type)",
        "O=c1:n:c:c:c2:n(-[CH2]~[#6]~[#6]):c3:c:c:c:c:c:3:c:1:2",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "1-alkyl-2-oxoindolin-3-ylidene hydrazide (OXIZID type)",
        "O=C1-N(-[CH2]~[#6]~[#6])-c2:c:c:c:c:c:2-C-1=N-N-C=O",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "classical cannabinoid with a branched 3-side chain (HU-210, nabilone, DMHP)",
        f"{_CHROMENE.format(side='[CX4;H0,H1;!R]', closure='~')}",
    ),
    (
        G.SYNTHETIC_CANNABINOID,
        "classical cannabinoid with a 6a,10a double bond (parahexyl, DMHP)",
        f"{_CHROMENE.format(side='[CX4]', closure='=')}",
    ),
    (
        G.PLANT_BASED,
        "classical cannabinoid with a straight 3-alkyl (THC, HHC, THCP, CBN and esters)",
        f"{_CHROMENE.format(side='[CX4]', closure='~')}",
    ),
    (
        G.PLANT_BASED,
        "quinolizidine carrying a beta-methoxyacrylate (corynanthe kratom alkaloids)",
        "[CX3;!R](=[CH1]-[OX2])(-[CX3](=O)-[OX2])-[CX4;R]1-[CX4;R]-[CX4;R]-[NX3;R]-[CX4;R]-[CX4;R]-1",
    ),
    (
        G.PLANT_BASED,
        "pyrido[3,4-b]indole, aromatic or reduced, basic N2 (harmala beta-carbolines)",
        "c12ccccc1[nX3]c1c2~[#6;R1]~[#6;R1]~[#7;R1;!$(N-C=O)]~[#6;R1]~1",
    ),
    (
        G.PLANT_BASED,
        "1-methyl-1,2,5,6-tetrahydropyridine-3-carboxylate (arecoline)",
        "[CX3](=O)(-[OX2])-[CX3;R1]1=[CX3;R1]-[CH2]-[CH2]-[NX3]-[CH2]-1",
    ),
    (
        G.PLANT_BASED,
        "3a-aryl-octahydroindole (Sceletium alkaloids, mesembrine)",
        "c-[CX4;R2]12-[CH2]-[CH2]-[NX3]-[CX4;R2]-1-[CX4]-[CX3,CX4]-[CX4]-[CX4]-2",
    ),
    (
        G.PLANT_BASED,
        "3-furyl neoclerodane lactone (salvinorins)",
        "O=C1-O-[CH1](-c2:c:o:c:c:2)-[CH2]-[#6;R2]-[#6;R2]-1",
    ),
    (
        G.PLANT_BASED,
        "2-(p-menthadienyl)-5-alkylresorcinol (cannabidiol type)",
        "[OX2H1]-c1:c:c(-[CX4]):c:c(-[OX2H1]):c:1-[CX4;R1]1-[CX3;R1]=[CX3;R1](-[CH3])-[CH2]-[CH2]"
        "-[CX4;R1]-1",
    ),
    (
        G.PLANT_BASED,
        "6-styryl-4-methoxy-5,6-dihydro-2-pyrone (kavalactones)",
        "O=C1-O-[CX4](-[CH]=[CH]-c)-[CH2]-C(-O-[CH3])=C-1",
    ),
    (
        G.PLANT_BASED,
        "3-hydroxyisoxazole with 5-aminomethyl (muscimol, ibotenic acid)",
        "[NX3]-[CX4]-c1:c:c(~[OX1,OX2]):n:o:1",
    ),
    (
        G.BENZODIAZEPINE,
        "1,4-diazepine fused to an aromatic ring, 5-substituted (benzo- and thienodiazepines)",
        "a1:a-[#6](-[#6;a,R])=,:[#7]-[#6]-[#6,#7]~[#7]-1",
    ),
    (
        G.BENZODIAZEPINE,
        "1,4-diazepine fused to an aromatic ring, 5-aryl, 4,5-saturated or N-oxide",
        "a1:a-[#6](-a)~[#7](~[#8,#6,#1])~[#6]-[#6]~[#7]-1",
    ),
    (
        G.BENZODIAZEPINE,
        "1-aryl-5H-2,3-benzodiazepine (tofisopam type)",
        "a1:a-[#6](-a)=[#7]-[#7]=[#6]-[#6]-1",
    ),
    (
        G.BENZODIAZEPINE,
        "5-aryl-1,5-benzodiazepine-2,4-dione (clobazam type)",
        "c1:c-[NX3](-a)-[CX3](=O)-[CX4]-[CX3](=O)-[NX3]-1",
    ),
    (G.TROPANE, "8-azabicyclo[3.2.1]octane", "[#6]1-[#6]-[#6]2-[#6]-[#6]-[#6](-[#6]-1)-[#7]-2"),
    (
        G.ARYLCYCLOHEXYLAMINE,
        "1-aryl-cyclohexylamine",
        f"a-[CX4;R1]1(-{AMINE})-[#6;R1]-[#6;R1]-[#6;R1]-[#6;R1]-[#6;R1]-1",
    ),
    (
        G.CATHINONE,
        "aryl ketone with an alpha amine (beta-keto phenethylamine)",
        f"c-[CX3](=O)-[CX4;!R]-{AMINE}",
    ),
    (
        G.PHENIDATE,
        "alpha-aryl-alpha-(2-azacycloalkyl)acetate (methylphenidate type)",
        "a-[CX4H1](-[CX3](=O)-[OX2,NX3])-[CX4;R1]1-[NX3;R1;H1,$(N-[CH3])]-[CH2]-[CH2]-[CH2,OX2]-[CH2]-1",
    ),
    (
        G.AMINOINDANE,
        "2-aminoindane",
        f"{AMINE}-[CX4;R1]1-[CH2]-c2:c:c:c:c:c:2-[CH2]-1",
    ),
    (
        G.PIPERAZINE,
        "1-aryl-, 1-benzyl- or 1-benzhydrylpiperazine",
        f"[$({_PHENYL}),$([CH2]-{_PHENYL}),$([CH1](-{_PHENYL})-{_PHENYL})]-[NX3;R1]1-[CH2]-[CH2]"
        "-[NX3;R1;!$(N-a)]-[CH2]-[CH2]-1",
    ),
    (
        G.OTHER,
        "1,2-diarylethylamine (diphenidine type; a dissociative class of its own)",
        f"c-[CX4;!R]-[CX4;!R](-c)-{AMINE}",
    ),
    (
        G.TRYPTAMINE,
        "3-(2-aminoethyl)indole with an open-chain ethyl",
        f"c1(-[CX4;!R]-{CHAIN_ALPHA}-{AMINE}):c:[nX3]:c2:c:c:c:c:c:1:2",
    ),
    (
        G.PHENETHYLAMINE,
        "2-arylethylamine with an open-chain ethyl, aryl a six-membered ring",
        f"[c;r6]-[CX4;!R]-{CHAIN_ALPHA}-{AMINE}",
    ),
)


@dataclass(frozen=True, slots=True)
class GroupMatch:
    group: ChemicalGroup
    rule: str  # the rule's name; "" when no rule matched (group other)


@cache
def _patterns() -> tuple[tuple[ChemicalGroup, str, Mol], ...]:
    compiled = []
    for group, name, smarts in RULES:
        pattern = Chem.MolFromSmarts(smarts)
        if pattern is None:
            raise ValueError(f"bad SMARTS for {group} rule {name!r}: {smarts}")
        compiled.append((group, name, pattern))
    return tuple(compiled)


def chemical_group(mol: Mol) -> GroupMatch:
    """The group of the first rule in RULES (priority order) that matches; `other` if none."""
    for group, name, pattern in _patterns():
        if mol.HasSubstructMatch(pattern):
            return GroupMatch(group, name)
    return GroupMatch(G.OTHER, "")


def matching_groups(mol: Mol) -> list[GroupMatch]:
    """Every rule that matches, in priority order: shows why the first one won."""
    return [GroupMatch(g, name) for g, name, p in _patterns() if mol.HasSubstructMatch(p)]
