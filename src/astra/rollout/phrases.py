"""The chain executor's few sentences, per language (planning, retries, the final answer).

Tool names, argument names and values are written as they are (language-neutral); only the
connecting sentences are translated. Languages without a table fall back to English and are
flagged in the trajectory's meta (the judge's language rule will then score the answer's
relevance 0, so such trajectories do not pass silently).
"""

from __future__ import annotations

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "plan_intro": "To answer your request I will take these steps:",
        "step": "step",
        "start": "I'll start with step 1.",
        "start_many": "I'll start with steps {steps} together.",
        "next": "The result of step {prev} gives {summary}. Next I will do step {i}.",
        "next_many": "The results so far give {summary}. Next I will do steps {steps} together.",
        "retry": "The call to {tool} failed with a temporary error ({kind}), so I will try it again.",
        "final_intro": "Here is what I found for your request:",
        "final_outro": "All of these values come directly from the results of the tools.",
        "results_n": "{n} results",
        "none": "no results",
    },
    "de": {
        "plan_intro": "Um Ihre Anfrage zu beantworten, gehe ich in diesen Schritten vor:",
        "step": "Schritt",
        "start": "Ich beginne mit Schritt 1.",
        "start_many": "Ich beginne mit den Schritten {steps} zusammen.",
        "next": "Schritt {prev} hat {summary} ergeben. Als Nächstes führe ich Schritt {i} aus.",
        "next_many": "Die bisherigen Ergebnisse sind {summary}. Als Nächstes führe ich die Schritte {steps} aus.",
        "retry": "Der Aufruf von {tool} ist mit einem vorübergehenden Fehler ({kind}) fehlgeschlagen, "
                 "daher versuche ich es noch einmal.",
        "final_intro": "Hier ist das Ergebnis Ihrer Anfrage:",
        "final_outro": "Alle diese Werte stammen direkt aus den Ergebnissen der Werkzeuge.",
        "results_n": "{n} Ergebnisse",
        "none": "keine Ergebnisse",
    },
    "fr": {
        "plan_intro": "Pour répondre à votre demande, je vais suivre ces étapes :",
        "step": "étape",
        "start": "Je commence par l'étape 1.",
        "start_many": "Je commence par les étapes {steps} ensemble.",
        "next": "L'étape {prev} a donné {summary}. Je passe maintenant à l'étape {i}.",
        "next_many": "Les résultats donnent {summary}. Je passe maintenant aux étapes {steps}.",
        "retry": "L'appel à {tool} a échoué avec une erreur temporaire ({kind}), je vais donc le relancer.",
        "final_intro": "Voici ce que j'ai trouvé pour votre demande :",
        "final_outro": "Toutes ces valeurs proviennent directement des résultats des outils.",
        "results_n": "{n} résultats",
        "none": "aucun résultat",
    },
    "es": {
        "plan_intro": "Para responder a su solicitud, voy a seguir estos pasos:",
        "step": "paso",
        "start": "Empiezo con el paso 1.",
        "start_many": "Empiezo con los pasos {steps} a la vez.",
        "next": "El paso {prev} dio {summary}. Ahora hago el paso {i}.",
        "next_many": "Los resultados dan {summary}. Ahora hago los pasos {steps}.",
        "retry": "La llamada a {tool} falló con un error temporal ({kind}), así que la voy a repetir.",
        "final_intro": "Esto es lo que encontré para su solicitud:",
        "final_outro": "Todos estos valores vienen directamente de los resultados de las herramientas.",
        "results_n": "{n} resultados",
        "none": "ningún resultado",
    },
    "it": {
        "plan_intro": "Per rispondere alla sua richiesta seguirò questi passi:",
        "step": "passo",
        "start": "Comincio con il passo 1.",
        "start_many": "Comincio con i passi {steps} insieme.",
        "next": "Il passo {prev} ha dato {summary}. Ora eseguo il passo {i}.",
        "next_many": "I risultati danno {summary}. Ora eseguo i passi {steps}.",
        "retry": "La chiamata a {tool} non è riuscita per un errore temporaneo ({kind}), quindi la ripeto.",
        "final_intro": "Ecco che cosa ho trovato per la sua richiesta:",
        "final_outro": "Tutti questi valori vengono direttamente dai risultati degli strumenti.",
        "results_n": "{n} risultati",
        "none": "nessun risultato",
    },
    "pt": {
        "plan_intro": "Para responder ao seu pedido, vou seguir estes passos:",
        "step": "passo",
        "start": "Começo pelo passo 1.",
        "start_many": "Começo pelos passos {steps} ao mesmo tempo.",
        "next": "O passo {prev} deu {summary}. Agora faço o passo {i}.",
        "next_many": "Os resultados dão {summary}. Agora faço os passos {steps}.",
        "retry": "A chamada a {tool} falhou com um erro temporário ({kind}), por isso vou repeti-la.",
        "final_intro": "Isto é o que encontrei para o seu pedido:",
        "final_outro": "Todos estes valores vêm diretamente dos resultados das ferramentas.",
        "results_n": "{n} resultados",
        "none": "nenhum resultado",
    },
    "nl": {
        "plan_intro": "Om uw vraag te beantwoorden, volg ik deze stappen:",
        "step": "stap",
        "start": "Ik begin met stap 1.",
        "start_many": "Ik begin met de stappen {steps} tegelijk.",
        "next": "Stap {prev} gaf {summary}. Nu voer ik stap {i} uit.",
        "next_many": "De resultaten geven {summary}. Nu voer ik de stappen {steps} uit.",
        "retry": "De aanroep van {tool} is mislukt door een tijdelijke fout ({kind}), dus ik probeer het opnieuw.",
        "final_intro": "Dit is wat ik voor uw vraag heb gevonden:",
        "final_outro": "Al deze waarden komen rechtstreeks uit de resultaten van de tools.",
        "results_n": "{n} resultaten",
        "none": "geen resultaten",
    },
    "zh": {
        "plan_intro": "为了回答您的请求，我将按以下步骤进行：",
        "step": "步骤",
        "start": "我先执行步骤 1。",
        "start_many": "我先同时执行步骤 {steps}。",
        "next": "步骤 {prev} 的结果是 {summary}。接下来执行步骤 {i}。",
        "next_many": "目前的结果是 {summary}。接下来同时执行步骤 {steps}。",
        "retry": "调用 {tool} 时出现临时错误（{kind}），我将重试。",
        "final_intro": "以下是根据您的请求查到的结果：",
        "final_outro": "以上所有数值都直接来自工具返回的结果。",
        "results_n": "{n} 条结果",
        "none": "没有结果",
    },
    "ja": {
        "plan_intro": "ご依頼にお答えするため、次の手順で進めます：",
        "step": "ステップ",
        "start": "まずステップ 1 から始めます。",
        "start_many": "まずステップ {steps} をまとめて実行します。",
        "next": "ステップ {prev} の結果は {summary} でした。次にステップ {i} を実行します。",
        "next_many": "これまでの結果は {summary} です。次にステップ {steps} をまとめて実行します。",
        "retry": "{tool} の呼び出しが一時的なエラー（{kind}）で失敗したため、もう一度試します。",
        "final_intro": "ご依頼について分かったことは次のとおりです：",
        "final_outro": "これらの値はすべてツールの結果から直接得たものです。",
        "results_n": "{n} 件の結果",
        "none": "結果なし",
    },
}

_NAMES = {
    "english": "en", "german": "de", "deutsch": "de", "french": "fr", "français": "fr", "francais": "fr",
    "spanish": "es", "español": "es", "espanol": "es", "italian": "it", "italiano": "it",
    "portuguese": "pt", "português": "pt", "portugues": "pt", "dutch": "nl", "nederlands": "nl",
    "chinese": "zh", "中文": "zh", "japanese": "ja", "日本語": "ja",
}


def normalize_language(code: str | None) -> str:
    """``"en-US"`` -> ``"en"``, ``"German"`` -> ``"de"``; unknown names pass through lower-cased."""
    c = (code or "en").strip().lower()
    if c in _NAMES:
        return _NAMES[c]
    return c.replace("_", "-").split("-")[0] or "en"


def phrases(language: str | None) -> tuple[str, dict[str, str]]:
    """``(language used, phrase table)``; English when there is no table for ``language``."""
    lang = normalize_language(language)
    if lang in PHRASES:
        return lang, PHRASES[lang]
    return "en", PHRASES["en"]
