"""Every dataset file the suite reads: canonical download URL, sha256 and data-row count.

Values come from the dataset mirror's MANIFEST.json. A URL pinned to a commit is used where the
manifest has one, so a download gives the same bytes as the mirror. MMLU's canonical source is a
tarball, so its per-subject test CSVs point at the pinned copy the mirror was taken from.
"""

from __future__ import annotations

from typing import NamedTuple


class FileInfo(NamedTuple):
    url: str
    sha256: str
    rows: int


FILES: dict[str, FileInfo] = {
    "cyberseceval/interpreter.json": FileInfo(
        "https://raw.githubusercontent.com/meta-llama/PurpleLlama/4be64c3a24442b51c76175e6ec67722cc3f5fe38/CybersecurityBenchmarks/datasets/interpreter/interpreter.json",
        "1d3e7cd4dd94a436d96b6e689c13e4f3edf5418d680d0b485a3ea8bf4664840c", 500),
    "cyberseceval/mitre_benchmark_100_per_category.json": FileInfo(
        "https://raw.githubusercontent.com/meta-llama/PurpleLlama/9c7f7c51378ba39c99727be7033c8864167c5848/CybersecurityBenchmarks/datasets/mitre/mitre_benchmark_100_per_category.json",
        "9d19c9a38780022e27a91c78899a1203788d4d6d352bc252ff54e1efc87d11d4", 1000),
    "cyberseceval/mitre_frr.json": FileInfo(
        "https://raw.githubusercontent.com/meta-llama/PurpleLlama/4be64c3a24442b51c76175e6ec67722cc3f5fe38/CybersecurityBenchmarks/datasets/mitre_frr/mitre_frr.json",
        "7a9b400bdf5ddbb36d5e7c3e8f6b5adb5d13125b8d03be66fd252a0f20b79d15", 750),
    "do_not_answer/do_not_answer_en.csv": FileInfo(
        "https://raw.githubusercontent.com/Libr-AI/do-not-answer/main/datasets/Instruction/do_not_answer_en.csv",
        "06acfa39a06a1b33d1f264ce41b4f7a95812010c594fb733ae4717ee0a4544fc", 939),
    "xstest/xstest_prompts.csv": FileInfo(
        "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/main/xstest_prompts.csv",
        "11783fb294ed017473ee53c207d71f2161c7672c8d0b037501e78387f801cb5a", 450),
    "xstest_completions/xstest_v2_completions_gpt4_gpteval.csv": FileInfo(
        "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/evaluation/automated_evaluation_labels/xstest_v2_completions_gpt4_gpteval.csv",
        "ba3b1e79ace763998ecdb48bbec70e3a4d763d8402cbb740f58ed6d275fc324a", 450),
    "xstest_completions/xstest_v2_completions_gpt4_streval.csv": FileInfo(
        "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/evaluation/automated_evaluation_labels/xstest_v2_completions_gpt4_streval.csv",
        "5cc07ac42f62009d4ff33d9b5dc96c329d43ae8076db89712f7b56637368c5f7", 450),
    "xstest_completions/xstest_v2_completions_llama2new_gpteval.csv": FileInfo(
        "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/evaluation/automated_evaluation_labels/xstest_v2_completions_llama2new_gpteval.csv",
        "14cb194968a29e7c5d0c2e280657f2ff14ea52f173ca12bc786387abd5185a70", 450),
    "xstest_completions/xstest_v2_completions_llama2new_streval.csv": FileInfo(
        "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/evaluation/automated_evaluation_labels/xstest_v2_completions_llama2new_streval.csv",
        "605183b95c8859673ff23898456a1fea24fbbd5993b9033dc7c12159227e3555", 450),
    "xstest_completions/xstest_v2_completions_llama2orig_gpteval.csv": FileInfo(
        "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/evaluation/automated_evaluation_labels/xstest_v2_completions_llama2orig_gpteval.csv",
        "a918c4d0c7355da5c80ce73dd7bc79b20422148b265851afe1e53c08e472ce48", 450),
    "xstest_completions/xstest_v2_completions_llama2orig_streval.csv": FileInfo(
        "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/evaluation/automated_evaluation_labels/xstest_v2_completions_llama2orig_streval.csv",
        "538f284005f829af76fd48cbe82334ab1c593b8193b62421866cc56929cc9881", 450),
    "xstest_completions/xstest_v2_completions_mistralguard_gpteval.csv": FileInfo(
        "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/evaluation/automated_evaluation_labels/xstest_v2_completions_mistralguard_gpteval.csv",
        "e3e0abcef20d95f3ea607e3db08104edb4e2593e38ce8fd517e69e06cc35260e", 450),
    "xstest_completions/xstest_v2_completions_mistralguard_streval.csv": FileInfo(
        "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/evaluation/automated_evaluation_labels/xstest_v2_completions_mistralguard_streval.csv",
        "0b9d2a5df933194e05620825dbaee0ac8dc121843e34477610f0e1e8eeb42033", 450),
    "bbq/Religion.jsonl": FileInfo(
        "https://raw.githubusercontent.com/nyu-mll/BBQ/main/data/Religion.jsonl",
        "cb9555f9f3454a52cd2df85956b59bd7fcca5aa922c8527693b1164d08417616", 1200),
    "toxigen/hate_women_1k.txt": FileInfo(
        "https://raw.githubusercontent.com/microsoft/TOXIGEN/main/prompts/hate_women_1k.txt",
        "eecdf3006847c267b9399045ce2fe002f884fe5b682dbef450f3477d7bb24497", 1000),
    "toxigen/neutral_women_1k.txt": FileInfo(
        "https://raw.githubusercontent.com/microsoft/TOXIGEN/main/prompts/neutral_women_1k.txt",
        "dfad74fee637cd35415fc9b3a0b8d27d799e5613da5d9be0fdf93774fe813208", 1000),
    "strongreject/strongreject_dataset.csv": FileInfo(
        "https://raw.githubusercontent.com/alexandrasouly/strongreject/main/strongreject_dataset/strongreject_dataset.csv",
        "4dd70357e4ff8b5d0ba5ebafecab5d6dd5633ce8046e3dd1c8bd93e64de44381", 313),
    "strongreject/strongreject_small_dataset.csv": FileInfo(
        "https://raw.githubusercontent.com/alexandrasouly/strongreject/main/strongreject_dataset/strongreject_small_dataset.csv",
        "3051340e3e89a3598d764dde497d5fcda80e258ac05cc35e6bd87228ac3d467c", 60),
    "sorry_bench/sorry_bench_202406_original.csv": FileInfo(
        "https://huggingface.co/datasets/sorry-bench/sorry-bench-202406",
        "314fb3a858fc4baae7d54e4574f2b8bfb085a88b5f538fdb7fb4bf13a4b294e6", 450),
    "sg_bench/malicious_instruction.json": FileInfo(
        "https://raw.githubusercontent.com/MurrayTom/SG-Bench/master/datasets/SG-Bench/original_query/malicious_instruction.json",
        "b49463d3ff7632c6eb1725c5fd0d36e591f6874dcd65dc75ab8b9aa593923994", 1442),
    "msts/english_textonly.csv": FileInfo(
        "https://raw.githubusercontent.com/paul-rottger/msts-multimodal-safety/main/data/prompts/english_textonly.csv",
        "f57de09638bfee477e241b9c4905176355d0b7926332a0561095cebd4cc37ba8", 400),
    "msts/english_multimodal.csv": FileInfo(
        "https://raw.githubusercontent.com/paul-rottger/msts-multimodal-safety/main/data/prompts/english_multimodal.csv",
        "6a72d35a562dc7a25e5c898d890ef68967433b4ff0456767692614698038298f", 400),
    "alpaca/alpaca.json": FileInfo(
        "https://raw.githubusercontent.com/andyrdt/refusal_direction/main/dataset/processed/alpaca.json",
        "c4ce1bdc5c9b92caabcb171c27c7ec1e79832836bae10291d7c8ab8c6245f600", 31323),
    "alpaca/alpaca_en_demo.json": FileInfo(
        "https://raw.githubusercontent.com/hiyouga/LLaMA-Factory/main/data/alpaca_en_demo.json",
        "bcc37c64db1a739a0789a1b81f251146fcf4459f903474bc9e3c21bbb5628318", 999),
    "advbench/harmful_behaviors.csv": FileInfo(
        "https://raw.githubusercontent.com/llm-attacks/llm-attacks/main/data/advbench/harmful_behaviors.csv",
        "6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1", 520),
    "harmbench/harmbench_behaviors_text_all.csv": FileInfo(
        "https://raw.githubusercontent.com/centerforaisafety/HarmBench/main/data/behavior_datasets/harmbench_behaviors_text_all.csv",
        "8d81accedd38eaaf8b760618622bb888417d1fd0c86eba65c427a16f1cbb4afc", 400),
    "harmbench/harmbench_behaviors_text_test.csv": FileInfo(
        "https://raw.githubusercontent.com/centerforaisafety/HarmBench/main/data/behavior_datasets/harmbench_behaviors_text_test.csv",
        "75d257b3e7428c52eb7b0154318f455af3e01b09a3794b5e2f3d36054f3c0e29", 320),
    "harmbench/harmbench_behaviors_text_val.csv": FileInfo(
        "https://raw.githubusercontent.com/centerforaisafety/HarmBench/main/data/behavior_datasets/harmbench_behaviors_text_val.csv",
        "7bfaaa5e2b9b95002c89e2d33c019f58e9e8496e2fc65d368f1eeb8179e69534", 80),
    "jailbreakbench/behaviors.csv": FileInfo(
        "https://raw.githubusercontent.com/JailbreakBench/jailbreakbench/28aa816c03c30d0d6c69befa19089dae6ec29e88/src/jailbreakbench/data/behaviors.csv",
        "45e9a8923b28f547bb372fbaa9af7df8b38c818a80ae50c3bab97704197ff516", 100),
    "jailbreakbench/benign-behaviors.csv": FileInfo(
        "https://huggingface.co/datasets/JailbreakBench/JBB-Behaviors/resolve/main/data/benign-behaviors.csv",
        "c0958ac974fb6629527aeff6c81c88154a877190d07313ac377d36951fde5d3e", 100),
}

_MMLU_URL = "https://raw.githubusercontent.com/google-deepmind/opro/e81b2f573ce4e15755c70c2535279d6fb940b4b7/data/MMLU-data/test/"

#: MMLU subject -> (sha256 of its test CSV, questions).
MMLU_TEST: dict[str, tuple[str, int]] = {
    "abstract_algebra": ("4be89c0fb1d2419722e88880f6da3da95750367185ecd36f6492a6f74785cf64", 100),
    "anatomy": ("966dfd5c4579885ebdb8c05d6754ae5834f672632586d8595be3c0f9360e6f4e", 135),
    "astronomy": ("87c9c3cb5a55395c70dd9ed521dd7d2629fd4ff236c5ab647102e007f52a9341", 152),
    "business_ethics": ("cd3fc3a85a34cb17e6c5b2fb68ea61e7800b31120d92934019f1e17f4832fbd4", 100),
    "clinical_knowledge": ("06a1ea973000d5ef5d2664c4ac1c68d0423f1cab6b3b682be7942633740811f1", 265),
    "college_biology": ("e1204cb9d19887ea266145f038b5d4cc1fbc33d7efce186259c4ecca1cbe3119", 144),
    "college_chemistry": ("4d61d7887f845b887c52ac928b6dffdcf2468d79f3d0fbb4d1731092a51d2552", 100),
    "college_computer_science": ("d53a1d0d1c4362dacf92a4ff1d6a755beb5a87f24a7301c3c4391fcacc6530b4", 100),
    "college_mathematics": ("8b5bef14d4209c7918eaf947e4f12a5ae9470567722d8ba9761302d733e8ac71", 100),
    "college_medicine": ("9c533cfff89edaa317b2e79bbabcdd5e2e522e019679cb4a6475e5f2a1861b1e", 173),
    "college_physics": ("079c3696eda22c13b0472de245c7bb4918315b59481964109a4f65d2a35b4243", 102),
    "computer_security": ("8e40f809858db9dd8585036b53984e570b6101f72be2214b85e979c7fafa307f", 100),
    "conceptual_physics": ("7b39a241bb20424fd2a4e0e37ce05d94865ffc44191d8be4063be0e973312256", 235),
    "econometrics": ("10eb6b2d3a519a463872ef75902991b51ebf45865b29888e86d40228ace24029", 114),
    "electrical_engineering": ("8b0d747a97cb2cbbd8926c8deb2cda6073da6d5d3cc099693aa7761be938f5e4", 145),
    "elementary_mathematics": ("65a46a0e1927ea37aabd031ddcb6d81eef70a7eee1e9e0af94ec8e3fa21d728b", 378),
    "formal_logic": ("bc2dc7373a664ae72e166dcbe3f7aaf1bb65b99f106f1831f335c53467f35248", 126),
    "global_facts": ("a81058ee8e2385edaf42b8847ec9db01221fa4b16d262db415f3370884745ff9", 100),
    "high_school_biology": ("cfaba2b58b9714d2a6983a90bce17f14cc44cfc8195b20f8f65fef70d21331b9", 310),
    "high_school_chemistry": ("0e3d94da331d1eb3cafecd64a6f0f64e6fd2410b0a76676b2c0728dc5c1374f5", 203),
    "high_school_computer_science": ("63806168fb0e5a72fe5bfb880f19816d8997e28d3f312c6b1831f4d40f432059", 100),
    "high_school_european_history": ("09983655452c3c40ba466050ec82252f02a235e5946734f4d73b73688fc9509b", 165),
    "high_school_geography": ("c6acdaa9d94c88cdefb9dd569e376733d9ba670c07db12cdff36ccdc18c2ab0c", 198),
    "high_school_government_and_politics": ("fbd7a89eb2c7806097e18b40950e44e0580e6f97cd151f01a216bb575c2d7903", 193),
    "high_school_macroeconomics": ("354b12cc74d2806c44d1fea42efba04ec12f10233e5169466080a1d1a6f8bba5", 390),
    "high_school_mathematics": ("fe8f7a154834bba30947401ba37ea6c7afdcfba82ddc341c79b5d3016991d290", 270),
    "high_school_microeconomics": ("a250cc4976654e479cecdb7b66046ce2412df3e5e1b9c3d145ed344eae9a2256", 238),
    "high_school_physics": ("573e0f8d8309e4669f53a4b13248a908507b6d5d4c97c977f7bb9814658fee54", 151),
    "high_school_psychology": ("88c33b6b0ade567d07b8b5b074effdb52f31d773541fd71e86cb0d85a8daf7bf", 545),
    "high_school_statistics": ("d62843d2fd084d6af1c8a0a6491d0aa642c34a7a68476605b9b3db5841e63d3f", 216),
    "high_school_us_history": ("0338dea3b11881be53c2208ae8dbb571c792c0dca6f0b36a352147c0be81625e", 204),
    "high_school_world_history": ("7787343ae18e4e1ef833c8630c0c914c62f42c2f35d8b90f4bec2eecccfc161e", 237),
    "human_aging": ("01299d7e0ae4a8d082daeecc140445ce7393b464040bd810b0a60a370ae5502e", 223),
    "human_sexuality": ("43ca779587725f126d07733b33ba339ce27cca6f85056872eccf4b0377e28a90", 131),
    "international_law": ("51b3a6d74cc84651b2355d2823c30d993015ddfe8ef39725da4e0442f29489fc", 121),
    "jurisprudence": ("bf7a770aebfbdb181abc2c26ffd7a01ab31f93c7e2dfe6924c57c7bca4a0dff6", 108),
    "logical_fallacies": ("3fe8b48c74832525556455d49960cc0c3cff37496783348043ff69a1863c2244", 163),
    "machine_learning": ("05984b90f887a7da12b3dd8e41e6c34fa856b2c939ea3124975d90910ceb2af0", 112),
    "management": ("4a535a11bb480a09a302e86d157ae2d33e054cfa00e4265fe300a9408b87ec6b", 103),
    "marketing": ("ecf0ae0ae906194d033ca7d7746eaf201232eccb78ee24147e737473f751233d", 234),
    "medical_genetics": ("cc30c698e94f12c00e610a39c62d1a1d9587fa53c005359317346081f722c5e6", 100),
    "miscellaneous": ("061b283bb264072321d848b3b7f409a932a11ffa023fc94898dd31d2a4c80c7e", 783),
    "moral_disputes": ("673f5e9054f55fc5e165a3ed01e1b13eb1ee5a3405055818b50532e05de9bfdd", 346),
    "moral_scenarios": ("128d7bd823d793f8b7faf28f98f4b3c737b3e84d4b42c06c13458d36075a423a", 895),
    "nutrition": ("309432be237ac2b659acd10fdd4347d32cdc60aa9daeafbac78486a8744fa0b6", 306),
    "philosophy": ("a0f0c6fc9e4f08c04ff3a339996c4ed688a9fbe75d205fff4b9d3549fb49fa1e", 311),
    "prehistory": ("8d44938332ea3d199cfa51a18ef69af972aa33ca4af7b5f5bc62e768a31f949a", 324),
    "professional_accounting": ("27071efa2f8fd8502d01e80b8d7c69439586019f59e416ce039968417ef41355", 282),
    "professional_law": ("eeb81cac576a5f537485b6befd25837b55f64b57e9b2a7e409210d7c8d608820", 1534),
    "professional_medicine": ("a034bf0dda10cb0848bdd3097eb1547d61ca2dac9e9b871563691621c38d51e9", 272),
    "professional_psychology": ("99785591dfe18717736c0c296c9d9840c832f98749060975f7e2d976ad204bf7", 612),
    "public_relations": ("3712f955d0c38b073b188a175a8d9a6ce64601f0ae9c98d8cfc37461c4cb5933", 110),
    "security_studies": ("ab7634702670ee0d5e98b852f5bcfad2821ff9a2e909d223de05422c948f6638", 245),
    "sociology": ("f6c464600032aa2bb53294ad53217fbb650601eee206af947b3ce4c587ff5bed", 201),
    "us_foreign_policy": ("2821ee009a2b1b7d4adc5a212a0bad7fe05d377455de0fe0841beab8f00142e1", 100),
    "virology": ("4355b9d79142da0e44a767a495a277733fd89ad67236cbbe3f42ff3a6d46b483", 166),
    "world_religions": ("3be96b2465419289c4fe0c8a0d003003facd243c8982c6daafc6ac90a40bd507", 171),
}

FILES.update({f"mmlu/test/{s}_test.csv": FileInfo(f"{_MMLU_URL}{s}_test.csv", sha, rows)
              for s, (sha, rows) in MMLU_TEST.items()})
